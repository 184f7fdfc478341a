#!/usr/bin/env python3
"""An independent checker of card-member notifications, written from
../shared/spec/FAMILY.md ("Notifications") and PROTOCOL.md's response
signatures alone, with Python's `cryptography` package (no code shared with
the Rust implementation).

Reads one JSON object on stdin:
  {"headers": {...}, "body": "<raw body>", "api_v3_key": "<32 chars>",
   "wechatpay_public_key_pem": "...", "wechatpay_public_key_id": "PUB_KEY_ID_..."}
Checks the Wechatpay-* headers (serial, a timestamp within 5 minutes, an
RSASSA-PKCS1-v1_5 SHA-256 signature over "timestamp\\nnonce\\nbody\\n"), the
envelope's fields, and decrypts the resource (AES-256-GCM, key = the APIv3
key's bytes, nonce and associated data as their UTF-8 strings, the 16-byte
tag at the end of the base64 ciphertext). Prints the plaintext and exits 0;
on any failure prints why on stderr and exits 1.
"""
import base64
import json
import sys
import time

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

EVENTS = {
    "BRAND_MEMBER_CARD.USER_CARD.CREATE": "user_card",
    "BRAND_MEMBER_CARD.USER_CARD.DELETE": "user_card",
    "BRAND_MEMBER_CARD.POINT_EXCHANGE_COUPON": "point_coupon",
    "BRAND_MEMBER_CARD.SYNC_USER_POINT": "sync_user_point",
}


def fail(why):
    print(why, file=sys.stderr)
    sys.exit(1)


def main():
    given = json.load(sys.stdin)
    headers = {name.lower(): value for name, value in given["headers"].items()}
    body = given["body"]
    for name in ("wechatpay-timestamp", "wechatpay-nonce", "wechatpay-signature", "wechatpay-serial"):
        if name not in headers:
            fail(f"header {name} is missing")
    if headers["wechatpay-serial"] != given["wechatpay_public_key_id"]:
        fail("Wechatpay-Serial is not the WeChat Pay public key ID")
    if abs(time.time() - int(headers["wechatpay-timestamp"])) >= 300:
        fail("Wechatpay-Timestamp is 5 minutes or more away")
    message = f"{headers['wechatpay-timestamp']}\n{headers['wechatpay-nonce']}\n{body}\n".encode()
    key = serialization.load_pem_public_key(given["wechatpay_public_key_pem"].encode())
    try:
        key.verify(base64.b64decode(headers["wechatpay-signature"]), message,
                   padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        fail("the signature does not verify")
    envelope = json.loads(body)
    for field in ("id", "create_time", "event_type", "resource_type", "summary", "resource"):
        if field not in envelope:
            fail(f"the envelope has no {field}")
    if envelope["resource_type"] != "encrypt-resource":
        fail("resource_type is not encrypt-resource")
    if envelope["event_type"] not in EVENTS:
        fail(f"unknown event_type {envelope['event_type']}")
    resource = envelope["resource"]
    if resource["algorithm"] != "AEAD_AES_256_GCM":
        fail("algorithm is not AEAD_AES_256_GCM")
    if resource["original_type"] != EVENTS[envelope["event_type"]]:
        fail("original_type does not match the event")
    if len(resource["nonce"].encode()) != 12:
        fail("the nonce is not 12 characters")
    aes = AESGCM(given["api_v3_key"].encode())
    try:
        plaintext = aes.decrypt(resource["nonce"].encode(), base64.b64decode(resource["ciphertext"]),
                                resource["associated_data"].encode())
    except InvalidTag:
        fail("the resource does not decrypt with this APIv3 key")
    json.loads(plaintext)
    sys.stdout.write(plaintext.decode())


if __name__ == "__main__":
    main()
