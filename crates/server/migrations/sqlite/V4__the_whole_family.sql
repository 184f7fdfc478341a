-- Issue 13: the provider's template object (bodies are converted by the
-- server at start, see storage/migrations.rs), lists, tokens, points
-- exchanges. Templates and user cards are listed newest first by rowid.
ALTER TABLE card_templates ADD COLUMN request_digest TEXT;
CREATE INDEX card_templates_by_state ON card_templates (brand_id, state);
CREATE INDEX user_cards_by_openid ON user_cards (brand_id, openid);
CREATE TABLE pre_auth_tokens (
    token TEXT PRIMARY KEY,
    brand_id TEXT NOT NULL,
    card_id TEXT NOT NULL,
    openid TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    used_at TEXT,
    FOREIGN KEY (brand_id, card_id) REFERENCES card_templates (brand_id, card_id)
);
CREATE TABLE point_exchanges (
    brand_id TEXT NOT NULL,
    record_id TEXT NOT NULL,
    card_id TEXT NOT NULL,
    user_card_code TEXT NOT NULL,
    openid TEXT NOT NULL,
    exchange_coupon_template_id TEXT NOT NULL,
    deduct_points INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    decision TEXT,
    answer TEXT,
    PRIMARY KEY (brand_id, record_id)
);
