//! Lists as lazy streams: a page is fetched when the items before it have
//! been consumed.
//!
//! The API pages by `offset` over a list ordered newest first, so an item
//! created while a client pages is added at the front and pushes every
//! other item one place back. Each answer carries `total_count`, counted
//! in the same snapshot as its page: the stream moves its next offset by
//! how much the total grew since the first page, and drops any item it has
//! already yielded. So a listing yields every item that existed when it
//! started exactly once, whatever is created meanwhile (items created
//! meanwhile may or may not appear). An item whose state changes out of a
//! state filter meanwhile may be missed, as with any offset pagination.

use std::collections::{HashSet, VecDeque};
use std::future::Future;

use card_member_protocol::model::Page;
use futures_util::stream::{self, Stream};

use crate::error::Error;

/// The most items a page may have (the API's limit).
pub const PAGE_SIZE: i64 = card_member_protocol::shared::MAX_PAGE_SIZE;

struct Cursor<T, F> {
    fetch: F,
    /// Offset in the list as it was when the listing started.
    offset: i64,
    first_total: Option<i64>,
    latest_total: i64,
    seen: HashSet<String>,
    buffer: VecDeque<T>,
    done: bool,
}

/// A stream over every item of a list; `fetch(offset, limit)` gets one
/// page, `key` names an item (to drop repeats).
pub(crate) fn paged<T, F, Fut>(
    fetch: F,
    key: fn(&T) -> String,
) -> impl Stream<Item = Result<T, Error>>
where
    F: FnMut(i64, i64) -> Fut,
    Fut: Future<Output = Result<Page<T>, Error>>,
{
    let cursor = Cursor {
        fetch,
        offset: 0,
        first_total: None,
        latest_total: 0,
        seen: HashSet::new(),
        buffer: VecDeque::new(),
        done: false,
    };
    stream::try_unfold(cursor, move |mut cursor| async move {
        loop {
            if let Some(item) = cursor.buffer.pop_front() {
                return Ok(Some((item, cursor)));
            }
            if cursor.done {
                return Ok(None);
            }
            let grown = cursor
                .first_total
                .map_or(0, |first| cursor.latest_total - first);
            let asked = cursor.offset + grown.max(0);
            let page = (cursor.fetch)(asked, PAGE_SIZE).await?;
            let first = *cursor.first_total.get_or_insert(page.total_count);
            cursor.latest_total = page.total_count;
            // Where this page starts in the list as it was at the start.
            let original = asked - (page.total_count - first).max(0);
            let fetched = i64::try_from(page.data.len()).unwrap_or(i64::MAX);
            cursor.offset = cursor.offset.max(original + fetched);
            cursor.done = page.data.is_empty() || asked + fetched >= page.total_count;
            for item in page.data {
                if cursor.seen.insert(key(&item)) {
                    cursor.buffer.push_back(item);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures_util::TryStreamExt as _;

    use super::*;

    /// A list newest first, into which `inserts` are made (at the front)
    /// just before the page at the given call is answered.
    async fn list_all(initial: usize, inserts: Vec<(usize, usize)>, page: i64) -> Vec<String> {
        let items: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(
            (0..initial).rev().map(|i| format!("old-{i}")).collect(),
        ));
        let calls = Arc::new(Mutex::new(0usize));
        let fetch = {
            let items = Arc::clone(&items);
            move |offset: i64, _limit: i64| {
                let items = Arc::clone(&items);
                let calls = Arc::clone(&calls);
                let inserts = inserts.clone();
                async move {
                    let mut call = calls.lock().unwrap();
                    let mut list = items.lock().unwrap();
                    for (at, count) in &inserts {
                        if *at == *call {
                            for n in 0..*count {
                                list.insert(0, format!("new-{at}-{n}"));
                            }
                        }
                    }
                    *call += 1;
                    let start = usize::try_from(offset).unwrap().min(list.len());
                    let end = (start + usize::try_from(page).unwrap()).min(list.len());
                    Ok(Page {
                        data: list[start..end].to_vec(),
                        total_count: i64::try_from(list.len()).unwrap(),
                        offset,
                        limit: page,
                    })
                }
            }
        };
        paged(fetch, |item: &String| item.clone())
            .try_collect()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn every_item_that_existed_is_yielded_once_whatever_is_created_meanwhile() {
        let listed = list_all(65, vec![(1, 3), (2, 1), (3, 25)], PAGE_SIZE).await;
        let old: Vec<&String> = listed.iter().filter(|i| i.starts_with("old")).collect();
        assert_eq!(old.len(), 65, "{listed:?}");
        let unique: HashSet<&String> = listed.iter().collect();
        assert_eq!(unique.len(), listed.len(), "no repeats");
    }

    #[tokio::test]
    async fn an_empty_list_is_one_request_and_no_items() {
        assert!(list_all(0, vec![], PAGE_SIZE).await.is_empty());
    }
}
