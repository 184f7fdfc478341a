//! Brands, their certificates and state, and the keys the database keeps to check an instance's against.

use super::*;

#[tokio::test]
async fn brands_are_added_once_listed_and_suspended() {
    for backend in backends().await {
        let storage = &backend.storage;
        storage.add_brand(&brand("b"), NOW).await.unwrap();
        assert!(
            matches!(
                storage.add_brand(&brand("b"), NOW).await,
                Err(StorageError::Taken(Taken::BrandId))
            ),
            "{}",
            backend.name
        );
        let second = second_certificate(storage).await;
        assert!(matches!(
            storage.add_brand_certificate("x", &second, NOW).await,
            Err(StorageError::NotFound)
        ));
        storage.set_brand_suspended("b", true).await.unwrap();
        let stored = storage.brand("b").await.unwrap().unwrap();
        assert_eq!(stored.certificates.len(), 2, "{}", backend.name);
        assert!(stored.suspended, "{}", backend.name);
        assert_eq!(storage.list_brands().await.unwrap().len(), 1);
        assert!(storage.brand("nobody").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn every_brand_is_listed_by_id_with_its_own_certificates_and_state() {
    for backend in backends().await {
        let storage = &backend.storage;
        for id in ["c", "a", "b"] {
            storage.add_brand(&brand(id), NOW).await.unwrap();
        }
        second_certificate(storage).await;
        storage.set_brand_suspended("c", true).await.unwrap();
        storage.set_brand_api_v3_key("a", &[7, 7]).await.unwrap();
        let listed = storage.list_brands().await.unwrap();
        let summary = |brand: &BrandRecord| {
            let serials: Vec<String> = brand
                .certificates
                .iter()
                .map(|certificate| certificate.serial_no.clone())
                .collect();
            (
                brand.brand_id.clone(),
                serials,
                brand.suspended,
                brand.api_v3_key.clone(),
            )
        };
        let mut one_by_one = Vec::new();
        for id in ["a", "b", "c"] {
            one_by_one.push(summary(&storage.brand(id).await.unwrap().unwrap()));
        }
        assert_eq!(
            listed.iter().map(summary).collect::<Vec<_>>(),
            one_by_one,
            "{}: the list is what each brand reads alone",
            backend.name
        );
        assert_eq!(one_by_one[1].1, ["01", "02"]);
        assert_eq!(
            listed[0].certificates[0].public_key,
            brand("a").certificates[0].public_key
        );
    }
}

#[tokio::test]
async fn the_data_key_check_is_kept_once_and_a_sealed_value_stands_in_before_it() {
    for backend in backends().await {
        let storage = &backend.storage;
        assert_eq!(storage.data_key_check().await.unwrap(), None);
        assert_eq!(
            storage.a_sealed_sample().await.unwrap(),
            None,
            "nothing sealed yet"
        );
        storage.add_brand(&brand("b"), NOW).await.unwrap();
        storage.set_brand_api_v3_key("b", b"sealed").await.unwrap();
        assert_eq!(
            storage.a_sealed_sample().await.unwrap(),
            Some(SealedSample::ApiV3Key {
                brand_id: "b".to_owned(),
                sealed: b"sealed".to_vec()
            })
        );
        assert_eq!(
            storage.keep_data_key_check(b"first").await.unwrap(),
            b"first"
        );
        assert_eq!(
            storage.keep_data_key_check(b"second").await.unwrap(),
            b"first",
            "an instance starting at the same time is answered the check kept first"
        );
        assert_eq!(
            storage.data_key_check().await.unwrap().as_deref(),
            Some(&b"first"[..])
        );
    }
}

#[tokio::test]
async fn the_wechatpay_key_is_kept_once_and_an_adopted_one_moves_every_brand_to_its_id() {
    for backend in backends().await {
        let storage = &backend.storage;
        let key = |id: &str, pem: &str| KeptWechatpayKey {
            public_key_id: id.to_owned(),
            public_key_pem: pem.to_owned(),
        };
        storage.add_brand(&brand("b"), NOW).await.unwrap();
        let mut other = brand("o");
        other.wechatpay_public_key_id = "PUB_KEY_ID_OTHER".into();
        storage.add_brand(&other, NOW).await.unwrap();
        assert_eq!(
            storage.wechatpay_key_ids_given().await.unwrap(),
            ["PUB_KEY_ID_1", "PUB_KEY_ID_OTHER"],
            "{}: what the brands' records say",
            backend.name
        );
        assert_eq!(storage.kept_wechatpay_key().await.unwrap(), None);
        let first = key("PUB_KEY_ID_1", "first");
        assert_eq!(
            storage.keep_wechatpay_key(first.clone()).await.unwrap(),
            first
        );
        assert_eq!(
            storage
                .keep_wechatpay_key(key("PUB_KEY_ID_2", "second"))
                .await
                .unwrap(),
            first,
            "{}: the first kept wins",
            backend.name
        );
        let adopted = key("PUB_KEY_ID_2", "second");
        assert_eq!(
            storage
                .adopt_wechatpay_key(adopted.clone(), false)
                .await
                .unwrap(),
            Adoption::WouldChange {
                kept: Some("PUB_KEY_ID_1".to_owned()),
                moving: 2
            },
            "{}: a change not allowed is answered, not made",
            backend.name
        );
        assert_eq!(storage.kept_wechatpay_key().await.unwrap(), Some(first));
        assert_eq!(
            storage
                .adopt_wechatpay_key(adopted.clone(), true)
                .await
                .unwrap(),
            Adoption::Adopted { brands_moved: 2 },
            "{}: every brand moves to the new ID",
            backend.name
        );
        assert_eq!(storage.kept_wechatpay_key().await.unwrap(), Some(adopted));
        let recorded = |id: &'static str| async move {
            storage
                .brand(id)
                .await
                .unwrap()
                .unwrap()
                .wechatpay_public_key_id
        };
        assert_eq!(recorded("b").await, "PUB_KEY_ID_2", "{}", backend.name);
        assert_eq!(recorded("o").await, "PUB_KEY_ID_2", "{}", backend.name);
        assert_eq!(
            storage
                .adopt_wechatpay_key(key("PUB_KEY_ID_2", "second"), false)
                .await
                .unwrap(),
            Adoption::Adopted { brands_moved: 0 },
            "{}: again, nothing moves, and nothing needs allowing",
            backend.name
        );
    }
}
