CREATE TABLE brands (
    brand_id TEXT PRIMARY KEY,
    wechatpay_public_key_id TEXT NOT NULL,
    suspended INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE TABLE brand_certificates (
    brand_id TEXT NOT NULL REFERENCES brands (brand_id),
    serial_no TEXT NOT NULL,
    public_key_spki BLOB NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (brand_id, serial_no)
);
CREATE TABLE card_templates (
    brand_id TEXT NOT NULL REFERENCES brands (brand_id),
    card_id TEXT NOT NULL,
    out_request_no TEXT NOT NULL,
    state TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (brand_id, card_id),
    UNIQUE (brand_id, out_request_no)
);
CREATE TABLE user_cards (
    brand_id TEXT NOT NULL,
    card_id TEXT NOT NULL,
    user_card_code TEXT NOT NULL,
    openid TEXT NOT NULL,
    card_type TEXT NOT NULL,
    card_color TEXT,
    card_picture_url TEXT,
    phone_number BLOB,
    level TEXT,
    valid_date_information TEXT NOT NULL,
    pickup_time TEXT NOT NULL,
    user_information TEXT,
    attach TEXT,
    state TEXT NOT NULL,
    invalid_reason TEXT,
    invalid_time TEXT,
    create_time TEXT NOT NULL,
    modify_time TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (brand_id, card_id, user_card_code),
    FOREIGN KEY (brand_id, card_id) REFERENCES card_templates (brand_id, card_id)
);
CREATE INDEX user_cards_by_holder ON user_cards (brand_id, card_id, openid);
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    brand_id TEXT NOT NULL,
    card_id TEXT NOT NULL,
    user_card_code TEXT NOT NULL,
    request_id TEXT NOT NULL,
    at TEXT NOT NULL,
    action TEXT NOT NULL,
    fields TEXT NOT NULL
);
CREATE INDEX audit_log_by_card ON audit_log (brand_id, card_id, user_card_code);
