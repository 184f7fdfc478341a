-- Every brand's cards newest first (the console's card list without a
-- search, and its later pages), read backwards along this index and
-- stopped at the page, not the whole table sorted: 186 ms for the first
-- page and 800 ms for the 4,000th at a million cards. SQLite reads its
-- table backwards in insertion order and needs none. `seq` never changes:
-- an update that changes no other indexed column stays a heap-only update.
CREATE INDEX user_cards_newest ON user_cards (seq);
