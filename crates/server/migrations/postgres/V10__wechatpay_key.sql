-- The WeChat Pay platform key this database's brands were given (its public
-- key ID and public key), kept by the first server start: an instance
-- holding another key refuses to start, since its responses and
-- notifications would be signed under a key no brand has. A deliberate
-- change of the key replaces it (`card-member keys adopt-wechatpay-key`).
CREATE TABLE wechatpay_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    public_key_id TEXT NOT NULL,
    public_key_pem TEXT NOT NULL
);
