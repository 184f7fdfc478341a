//! User cards: imports and their rules, updates and their audit, a holder's list, the console's search.

use super::*;

#[tokio::test]
async fn imports_enforce_template_code_and_holder_rules() {
    for backend in backends().await {
        seeded(&backend).await;
        let storage = &backend.storage;
        let mut orphan = user_card("9", "o9");
        orphan.card_id = "missing".into();
        assert!(matches!(
            storage.import(&orphan, true).await,
            Err(StorageError::NotFound)
        ));
        assert!(matches!(
            storage.import(&user_card("1", "other"), true).await,
            Err(StorageError::Taken(Taken::UserCardCode))
        ));
        assert!(matches!(
            storage.import(&user_card("2", "o"), true).await,
            Err(StorageError::Taken(Taken::HolderCard))
        ));
        storage.import(&user_card("2", "o"), false).await.unwrap();
        assert_eq!(
            storage
                .user_card(key("2"))
                .await
                .unwrap()
                .unwrap()
                .phone_number,
            Some(vec![1, 2, 3]),
            "{}",
            backend.name
        );
    }
}

#[tokio::test]
async fn updates_apply_the_patch_with_their_audit_record_or_nothing() {
    for backend in backends().await {
        seeded(&backend).await;
        let storage = &backend.storage;
        let patch = UserCardPatch {
            level: Some("gold".into()),
            ..UserCardPatch::default()
        };
        assert!(matches!(
            storage
                .change_user_card(
                    key("nope"),
                    patching("o", patch.clone()),
                    &audit("nope", "update", &["level"]),
                    None
                )
                .await,
            Err(StorageError::NotFound)
        ));
        assert!(matches!(
            storage
                .change_user_card(
                    key("1"),
                    patching("x", patch.clone()),
                    &audit("1", "update", &["level"]),
                    None
                )
                .await
                .map_err(|err| refusal_of(&err).cloned()),
            Err(Some(Refusal::OpenidMismatch))
        ));
        let updated = storage
            .change_user_card(
                key("1"),
                patching("o", patch),
                &audit("1", "update", &["level"]),
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            (updated.level.as_deref(), updated.version),
            (Some("gold"), 2),
            "{}",
            backend.name
        );
        assert_eq!(
            updated.phone_number,
            Some(vec![1, 2, 3]),
            "untouched fields stay"
        );
        let trail = storage.audit_trail(key("1")).await.unwrap();
        let actions: Vec<&str> = trail.iter().map(|entry| entry.action.as_str()).collect();
        assert_eq!(actions, ["import", "update"], "{}", backend.name);
        assert_eq!(trail[1].fields, ["level"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_updates_of_different_fields_all_persist() {
    for backend in backends().await {
        seeded(&backend).await;
        let patches = [
            UserCardPatch {
                level: Some("L".into()),
                ..UserCardPatch::default()
            },
            UserCardPatch {
                card_color: Some("#010203".into()),
                ..UserCardPatch::default()
            },
            UserCardPatch {
                attach: Some("A".into()),
                ..UserCardPatch::default()
            },
            UserCardPatch {
                card_picture_url: Some("https://p".into()),
                ..UserCardPatch::default()
            },
            UserCardPatch {
                phone_number: Some(vec![9]),
                ..UserCardPatch::default()
            },
            UserCardPatch {
                valid_date_information: Some(DateInfo::permanent()),
                ..UserCardPatch::default()
            },
        ];
        let mut updates = tokio::task::JoinSet::new();
        for patch in patches {
            let storage = backend.storage.clone();
            updates.spawn(async move {
                let fields = patch.field_names();
                storage
                    .change_user_card(
                        key("1"),
                        patching("o", patch),
                        &audit("1", "update", &fields),
                        None,
                    )
                    .await
                    .unwrap();
            });
        }
        while let Some(done) = updates.join_next().await {
            done.unwrap();
        }
        let card = backend.storage.user_card(key("1")).await.unwrap().unwrap();
        assert_eq!(card.level.as_deref(), Some("L"), "{}", backend.name);
        assert_eq!(card.card_color.as_deref(), Some("#010203"));
        assert_eq!(card.attach.as_deref(), Some("A"));
        assert_eq!(card.card_picture_url.as_deref(), Some("https://p"));
        assert_eq!(card.phone_number, Some(vec![9]));
        assert_eq!(
            card.version, 7,
            "{}: every update read the one before",
            backend.name
        );
    }
}

#[tokio::test]
async fn a_holders_cards_are_listed_newest_first() {
    for backend in backends().await {
        seeded(&backend).await;
        let storage = &backend.storage;
        storage.import(&user_card("2", "o"), false).await.unwrap();
        storage.import(&user_card("3", "p"), false).await.unwrap();
        let codes: Vec<String> = storage
            .list_user_cards("b", "o")
            .await
            .unwrap()
            .into_iter()
            .map(|card| card.user_card_code)
            .collect();
        assert_eq!(codes, ["2", "1"], "{}", backend.name);
    }
}

#[tokio::test]
async fn the_card_search_matches_every_criterion_given_and_only_those_newest_first() {
    for backend in backends().await {
        seeded(&backend).await;
        let storage = &backend.storage;
        for (code, openid, state) in [
            ("2", "o2", UserCardState::Invalid),
            ("3", "o3", UserCardState::Effective),
        ] {
            let mut card = user_card(code, openid);
            card.state = state;
            storage.import(&card, true).await.unwrap();
        }
        let some = |value: &str| Some(value.to_owned());
        let cases = [
            (CardSearch::default(), vec!["3", "2", "1"]),
            (
                CardSearch {
                    openid: some("o2"),
                    ..CardSearch::default()
                },
                vec!["2"],
            ),
            (
                CardSearch {
                    user_card_code: some("3"),
                    ..CardSearch::default()
                },
                vec!["3"],
            ),
            (
                CardSearch {
                    state: some("INVALID"),
                    ..CardSearch::default()
                },
                vec!["2"],
            ),
            (
                CardSearch {
                    brand_id: some("b"),
                    card_id: some("c"),
                    state: some("EFFECTIVE"),
                    ..CardSearch::default()
                },
                vec!["3", "1"],
            ),
            (
                CardSearch {
                    user_card_code: some("1"),
                    openid: some("o3"),
                    ..CardSearch::default()
                },
                vec![],
            ),
            (
                CardSearch {
                    brand_id: some("nobody"),
                    ..CardSearch::default()
                },
                vec![],
            ),
        ];
        for (mut search, expected) in cases {
            search.limit = 10;
            let (cards, total) = storage.search_user_cards(&search).await.unwrap();
            let codes: Vec<&str> = cards.iter().map(|c| c.user_card_code.as_str()).collect();
            assert_eq!(codes, expected, "{}: {search:?}", backend.name);
            assert_eq!(
                total,
                Counted::Exactly(expected.len() as i64),
                "{}: {search:?}",
                backend.name
            );
        }
        let page = CardSearch {
            limit: 1,
            offset: 1,
            ..CardSearch::default()
        };
        let (cards, total) = storage.search_user_cards(&page).await.unwrap();
        assert_eq!(
            (cards[0].user_card_code.as_str(), total),
            ("2", Counted::Exactly(3)),
            "{}",
            backend.name
        );
        // A broad search is counted up to its cap, or to the end of its
        // page if that is further: whether there is an older page is known.
        for (offset, limit, counted) in [
            (0, 1, Counted::MoreThan(2)),
            (0, 3, Counted::Exactly(3)),
            (1, 1, Counted::MoreThan(2)),
            (2, 1, Counted::Exactly(3)),
        ] {
            let capped = CardSearch {
                offset,
                limit,
                count_cap: Some(2),
                ..CardSearch::default()
            };
            let (_, total) = storage.search_user_cards(&capped).await.unwrap();
            assert_eq!(total, counted, "{}: {offset} {limit}", backend.name);
        }
    }
}
