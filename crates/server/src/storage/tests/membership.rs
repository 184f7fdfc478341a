//! The member's life: tokens spent once, point exchanges settled once, member records once per request, images.

use super::*;

#[tokio::test]
async fn a_token_is_spent_once_by_the_sign_up_it_was_made_for() {
    for backend in backends().await {
        seeded(&backend).await;
        let storage = &backend.storage;
        let now = Clock::default().unix_now();
        let token = TokenRecord {
            token: "tok".into(),
            brand_id: "b".into(),
            card_id: "c".into(),
            openid: "new".into(),
            expires_at: now + 3600,
            created_at: NOW.into(),
            used_at: None,
        };
        storage.create_token(&token, takes_cards).await.unwrap();
        let spend = || SpentToken {
            spendable: token_spendable,
            token: "tok".into(),
            now,
        };
        let mut stranger = user_card("5", "someone-else");
        stranger.state = UserCardState::Unactivated;
        assert!(
            matches!(
                storage
                    .insert_user_card(
                        &stranger,
                        Arc::new(|_: &UserCardRecord| true),
                        &audit("5", "sign-up", &[]),
                        Some(spend()),
                        None,
                        takes_cards
                    )
                    .await
                    .map_err(|err| refusal_of(&err).cloned()),
                Err(Some(Refusal::Other(_)))
            ),
            "a token is for its user: {}",
            backend.name
        );
        let mut card = user_card("6", "new");
        card.state = UserCardState::Unactivated;
        storage
            .insert_user_card(
                &card,
                Arc::new(|_: &UserCardRecord| true),
                &audit("6", "sign-up", &[]),
                Some(spend()),
                None,
                takes_cards,
            )
            .await
            .unwrap();
        assert!(
            storage
                .token("tok")
                .await
                .unwrap()
                .unwrap()
                .used_at
                .is_some()
        );
        let mut again = user_card("7", "new");
        again.state = UserCardState::Unactivated;
        let refused = storage
            .insert_user_card(
                &again,
                Arc::new(|_: &UserCardRecord| false),
                &audit("7", "sign-up", &[]),
                Some(spend()),
                None,
                takes_cards,
            )
            .await;
        assert!(
            matches!(&refused, Err(err) if refusal_of(err).is_some_and(|why| why.to_string().contains("used"))),
            "{}: {refused:?}",
            backend.name
        );
        let expired = TokenRecord {
            token: "old".into(),
            expires_at: now - 1,
            ..token.clone()
        };
        storage.create_token(&expired, takes_cards).await.unwrap();
        let refused = storage
            .insert_user_card(
                &again,
                Arc::new(|_: &UserCardRecord| false),
                &audit("7", "sign-up", &[]),
                Some(SpentToken {
                    spendable: token_spendable,
                    token: "old".into(),
                    now,
                }),
                None,
                takes_cards,
            )
            .await;
        assert!(
            matches!(&refused, Err(err) if refusal_of(err).is_some_and(|why| why.to_string().contains("expired")))
        );
        storage
            .change_card(
                "b",
                "c",
                Box::new(|card| {
                    card.state = CardState::CardInvalid;
                    Ok(true)
                }),
            )
            .await
            .unwrap();
        assert!(matches!(
            storage
                .create_token(
                    &TokenRecord {
                        token: "t2".into(),
                        ..token
                    },
                    takes_cards
                )
                .await
                .map_err(|err| refusal_of(&err).cloned()),
            Err(Some(Refusal::TemplateInvalid))
        ));
    }
}

#[tokio::test]
async fn a_point_exchange_is_settled_once() {
    for backend in backends().await {
        seeded(&backend).await;
        let storage = &backend.storage;
        let exchange = PointExchangeRecord {
            brand_id: "b".into(),
            record_id: "r1".into(),
            card_id: "c".into(),
            user_card_code: "1".into(),
            openid: "o".into(),
            exchange_coupon_template_id: "t".into(),
            deduct_points: 100,
            created_at: NOW.into(),
            decision: None,
            answer: None,
        };
        storage
            .create_point_exchange(&exchange, None)
            .await
            .unwrap();
        assert!(matches!(
            storage.create_point_exchange(&exchange, None).await,
            Err(StorageError::Taken(Taken::ExchangeRecordId))
        ));
        let settled = storage
            .settle_point_exchange(
                "b",
                "r1",
                Box::new(|exchange| {
                    exchange.decision = Some("ALLOW".into());
                    exchange.answer = Some("{}".into());
                    Ok(true)
                }),
            )
            .await
            .unwrap();
        assert_eq!(
            settled.decision.as_deref(),
            Some("ALLOW"),
            "{}",
            backend.name
        );
        let read = storage
            .settle_point_exchange("b", "r1", Box::new(|_| Ok(false)))
            .await
            .unwrap();
        assert_eq!(read.answer.as_deref(), Some("{}"));
        assert!(matches!(
            storage
                .settle_point_exchange("other", "r1", Box::new(|_| Ok(true)))
                .await,
            Err(StorageError::NotFound)
        ));
    }
}

/// A member record (an activity entry, a points sync) for card `1`.
fn member_record(out_request_no: &str, digest: &str, openid: &str) -> MemberRecord {
    MemberRecord {
        brand_id: "b".into(),
        kind: "points",
        out_request_no: out_request_no.into(),
        request_digest: digest.into(),
        card_id: "c".into(),
        user_card_code: "1".into(),
        openid: openid.into(),
        answer: format!("{{\"digest\":\"{digest}\"}}"),
        created_at: NOW.into(),
    }
}

#[tokio::test]
async fn a_member_record_is_kept_once_per_out_request_no_for_its_holders_card_only() {
    use crate::domain::user_cards::takes_records;
    for backend in backends().await {
        seeded(&backend).await;
        let storage = &backend.storage;
        let first = member_record("r1", "d1", "o");
        assert_eq!(
            storage
                .record_member_activity(&first, takes_records)
                .await
                .unwrap(),
            Recorded::First,
            "{}",
            backend.name
        );
        assert_eq!(
            storage
                .record_member_activity(&first, takes_records)
                .await
                .unwrap(),
            Recorded::Repeated(first.answer.clone()),
            "the same request again answers the first answer"
        );
        assert!(matches!(
            storage
                .record_member_activity(&member_record("r1", "d2", "o"), takes_records)
                .await,
            Err(StorageError::Taken(Taken::RecordRequestNo))
        ));
        let refused = storage
            .record_member_activity(&member_record("r2", "d3", "other"), takes_records)
            .await
            .unwrap_err();
        assert!(
            matches!(refusal_of(&refused), Some(Refusal::OpenidMismatch)),
            "{refused}"
        );
        let mut no_card = member_record("r3", "d4", "o");
        no_card.user_card_code = "404".into();
        assert!(matches!(
            storage
                .record_member_activity(&no_card, takes_records)
                .await,
            Err(StorageError::NotFound)
        ));
        assert_eq!(
            storage
                .record_member_activity(&member_record("r2", "d5", "o"), takes_records)
                .await
                .unwrap(),
            Recorded::First,
            "a refused record kept nothing under its key"
        );
    }
}

#[tokio::test]
async fn images_are_kept_and_read_back_by_id() {
    for backend in backends().await {
        let storage = &backend.storage;
        let image = MediaRecord {
            media_id: format!("{}.png", "ab".repeat(32)),
            brand_id: "b".into(),
            content_type: "image/png".into(),
            bytes: b"\x89PNG\r\n\x1a\nrest".to_vec(),
            created_at: NOW.into(),
        };
        storage.save_image(&image).await.unwrap();
        storage.save_image(&image).await.unwrap();
        let read = storage.image(&image.media_id).await.unwrap().unwrap();
        assert_eq!(
            (read.bytes, read.content_type),
            (image.bytes.clone(), image.content_type.clone()),
            "{}",
            backend.name
        );
        assert!(storage.image("missing.png").await.unwrap().is_none());
        assert!(storage.image("../test.db").await.unwrap().is_none());
    }
}
