CREATE TABLE member_records (
    brand_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    out_request_no TEXT NOT NULL,
    request_digest TEXT NOT NULL,
    card_id TEXT NOT NULL,
    user_card_code TEXT NOT NULL,
    answer TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (brand_id, kind, out_request_no)
);
CREATE INDEX member_records_by_card ON member_records (brand_id, card_id, user_card_code, kind);
