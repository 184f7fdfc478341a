-- A constant sealed under the data key by the first start: a server or an
-- administrative command holding another key refuses to seal anything with
-- it (personal data sealed under two keys, one of them soon lost).
CREATE TABLE data_key_check (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    sealed BYTEA NOT NULL
);
