-- Issue 14: brands' APIv3 keys (sealed), the notification outbox and its
-- delivery attempts, the simulation's per-brand clocks, the console's indexes.
ALTER TABLE brands ADD COLUMN api_v3_key BLOB;
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    brand_id TEXT NOT NULL,
    card_id TEXT NOT NULL,
    user_card_code TEXT NOT NULL,
    event_type TEXT NOT NULL,
    original_type TEXT NOT NULL,
    summary TEXT NOT NULL,
    sealed_resource BLOB NOT NULL,
    create_time TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    leased_until INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_by_brand ON outbox (brand_id, create_time);
CREATE INDEX outbox_by_card ON outbox (brand_id, card_id, user_card_code);
CREATE INDEX outbox_by_state ON outbox (state);
-- The console's searches across brands.
CREATE INDEX user_cards_by_code ON user_cards (user_card_code);
CREATE INDEX user_cards_by_openid_alone ON user_cards (openid);
CREATE TABLE delivery_attempts (
    notification_id TEXT NOT NULL REFERENCES outbox (id),
    attempt INTEGER NOT NULL,
    at TEXT NOT NULL,
    status INTEGER,
    latency_ms INTEGER NOT NULL,
    error TEXT,
    PRIMARY KEY (notification_id, attempt)
);
CREATE TABLE brand_clocks (
    brand_id TEXT PRIMARY KEY,
    offset_secs INTEGER NOT NULL
);
