-- The newest notifications of every brand (the console's notifications
-- page, `card-member notifications list` without a brand), read backwards
-- along this index and stopped at the page, not the whole outbox sorted:
-- 230 ms at 300,000 notifications, growing with the outbox. SQLite reads
-- its table backwards in insertion order and needs none. Every index of
-- the outbox gets an entry at each lease and each recorded attempt (both
-- change an indexed column): this one's cost on the drain is measured in
-- BENCHMARKS.md.
CREATE INDEX outbox_newest ON outbox (create_time, id);
