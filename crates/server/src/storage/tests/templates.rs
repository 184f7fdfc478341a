//! Templates: idempotent on their request number, listed newest first.

use super::*;

#[tokio::test]
async fn templates_are_idempotent_on_out_request_no() {
    for backend in backends().await {
        let storage = &backend.storage;
        storage.add_brand(&brand("b"), NOW).await.unwrap();
        let first = storage
            .create_card(&template("b", "c1", "r1"), "d")
            .await
            .unwrap();
        let again = storage
            .create_card(&template("b", "c2", "r1"), "d")
            .await
            .unwrap();
        assert_eq!(again.card.card_id, first.card.card_id, "{}", backend.name);
        assert!(
            storage.card("b", "c2").await.unwrap().is_none(),
            "{}",
            backend.name
        );
        assert_eq!(storage.card("b", "c1").await.unwrap().unwrap(), first);
    }
}

#[tokio::test]
async fn a_template_key_sent_again_with_another_body_is_refused() {
    for backend in backends().await {
        let storage = &backend.storage;
        storage.add_brand(&brand("b"), NOW).await.unwrap();
        storage
            .create_card(&template("b", "c1", "r1"), "first")
            .await
            .unwrap();
        assert!(
            matches!(
                storage
                    .create_card(&template("b", "c2", "r1"), "second")
                    .await,
                Err(StorageError::Taken(Taken::TemplateRequestNo))
            ),
            "{}",
            backend.name
        );
    }
}

#[tokio::test]
async fn template_lists_are_newest_first_filtered_and_counted() {
    for backend in backends().await {
        let storage = &backend.storage;
        storage.add_brand(&brand("b"), NOW).await.unwrap();
        storage.add_brand(&brand("other"), NOW).await.unwrap();
        for index in 0..5 {
            storage
                .create_card(
                    &template("b", &format!("c{index}"), &format!("r{index}")),
                    "d",
                )
                .await
                .unwrap();
        }
        storage
            .create_card(&template("other", "x", "r"), "d")
            .await
            .unwrap();
        storage
            .change_card(
                "b",
                "c1",
                Box::new(|card| {
                    card.state = CardState::CardInvalid;
                    Ok(true)
                }),
            )
            .await
            .unwrap();
        let ids = |cards: Vec<Card>| cards.into_iter().map(|c| c.card_id).collect::<Vec<_>>();
        let (page, total) = storage.list_cards("b", None, 0, 2).await.unwrap();
        assert_eq!(
            (ids(page), total),
            (vec!["c4".to_owned(), "c3".to_owned()], 5),
            "{}",
            backend.name
        );
        let (page, _) = storage.list_cards("b", None, 4, 20).await.unwrap();
        assert_eq!(ids(page), ["c0"]);
        let (page, total) = storage.list_cards("b", None, 10, 20).await.unwrap();
        assert_eq!(
            (ids(page), total),
            (vec![], 5),
            "past the end: no templates, and still the total"
        );
        let (page, total) = storage.list_cards("nobody", None, 0, 20).await.unwrap();
        assert_eq!((ids(page), total), (vec![], 0), "a brand with none");
        let (page, total) = storage
            .list_cards("b", Some("CARD_INVALID"), 0, 20)
            .await
            .unwrap();
        assert_eq!((ids(page), total), (vec!["c1".to_owned()], 1));
        let (_, effective) = storage
            .list_cards("b", Some("CARD_EFFECTIVE"), 0, 20)
            .await
            .unwrap();
        assert_eq!(effective, 4);
        assert!(matches!(
            storage.change_card("b", "x", Box::new(|_| Ok(true))).await,
            Err(StorageError::NotFound)
        ));
    }
}
