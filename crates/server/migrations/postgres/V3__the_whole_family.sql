-- Issue 13: the provider's template object (bodies are converted by the
-- server at start, see storage/migrations.rs), lists, tokens, points
-- exchanges, images. Templates and user cards are listed newest first by
-- seq.
ALTER TABLE card_templates ADD COLUMN request_digest TEXT;
ALTER TABLE card_templates ADD COLUMN seq BIGSERIAL;
CREATE INDEX card_templates_by_state ON card_templates (brand_id, state, seq);
CREATE INDEX card_templates_by_seq ON card_templates (brand_id, seq);
ALTER TABLE user_cards ADD COLUMN seq BIGSERIAL;
CREATE INDEX user_cards_by_openid ON user_cards (brand_id, openid, seq);
CREATE TABLE pre_auth_tokens (
    token TEXT PRIMARY KEY,
    brand_id TEXT NOT NULL,
    card_id TEXT NOT NULL,
    openid TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
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
    deduct_points BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    decision TEXT,
    answer TEXT,
    PRIMARY KEY (brand_id, record_id)
);
CREATE TABLE media (
    media_id TEXT PRIMARY KEY,
    brand_id TEXT NOT NULL,
    content_type TEXT NOT NULL,
    bytes BYTEA NOT NULL,
    created_at TEXT NOT NULL
);
