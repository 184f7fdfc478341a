//! The OpenAPI 3.1 document of every endpoint, built from the protocol's
//! endpoint table and its bodies' rule tables (what validation runs on),
//! served at `GET /openapi.json` and printed by `card-member openapi`.

use card_member_protocol::endpoints::{self, ENDPOINTS, Endpoint, Param};
use card_member_protocol::validation::{SINGLE_LINE_PATTERN, schema};
use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "headers": {"Request-ID": {"$ref": "#/components/headers/Request-ID"}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

/// A parameter's JSON Schema: a string, never empty (a parameter given has
/// a value: `?state=` is refused), one line, with its limits where it has
/// them.
fn parameter(param: &Param, location: &str) -> Value {
    let mut schema = json!({"type": "string", "minLength": 1, "pattern": SINGLE_LINE_PATTERN});
    if let Some(max) = param.max_chars {
        schema["maxLength"] = json!(max);
    }
    if let Some(pattern) = param.pattern {
        schema["pattern"] = json!(pattern);
    }
    json!({"name": param.name, "in": location, "required": param.required, "schema": schema, "description": param.description})
}

fn operation(endpoint: &Endpoint) -> Value {
    let mut parameters = vec![
        json!({"$ref": "#/components/parameters/Authorization"}),
        json!({"$ref": "#/components/parameters/Wechatpay-Serial"}),
        json!({"$ref": "#/components/parameters/Accept"}),
    ];
    parameters.extend(endpoint.path_params.iter().map(|p| parameter(p, "path")));
    parameters.extend(endpoint.query_params.iter().map(|p| parameter(p, "query")));
    let mut operation = json!({
        "operationId": endpoint.name,
        "summary": endpoint.summary,
        "security": [{"brandSignature": []}],
        "parameters": parameters,
        "responses": {
            "200": {
                "description": "Done. Signed: verify Wechatpay-Signature over `timestamp\\nnonce\\nbody\\n` with the WeChat Pay public key.",
                "headers": {
                    "Request-ID": {"$ref": "#/components/headers/Request-ID"},
                    "Wechatpay-Nonce": {"$ref": "#/components/headers/Wechatpay-Nonce"},
                    "Wechatpay-Timestamp": {"$ref": "#/components/headers/Wechatpay-Timestamp"},
                    "Wechatpay-Serial": {"$ref": "#/components/headers/Wechatpay-Serial"},
                    "Wechatpay-Signature": {"$ref": "#/components/headers/Wechatpay-Signature"},
                    "Wechatpay-Signature-Type": {"$ref": "#/components/headers/Wechatpay-Signature-Type"}
                },
                "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{}", endpoint.response.name())}}}
            },
            "400": error_response("PARAM_ERROR (a field breaks its rule, unknown field, bad RFC 3339 time, undecryptable ciphertext) or INVALID_REQUEST (wrong Wechatpay-Serial, Accept or Content-Type; openid not the holder; card invalid; code taken; holder already has a card)"),
            "401": error_response("SIGN_ERROR: Authorization malformed, timestamp 5 minutes or more off, unknown brand or serial, wrong signature, replayed nonce"),
            "403": error_response("NO_AUTH: the brand may not use this function"),
            "404": error_response("NOT_FOUND: no such card or template for this brand"),
            "413": error_response("PARAM_ERROR: the body is larger than 64 KiB"),
            "429": {
                "description": "RATELIMIT_EXCEEDED: over the brand's limit (5/s, burst 5; import 10/s); nothing was done",
                "headers": {
                    "Request-ID": {"$ref": "#/components/headers/Request-ID"},
                    "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}
                },
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
            },
            "500": error_response("SYSTEM_ERROR: internal failure"),
            "503": error_response("SERVICE_UNAVAILABLE: a dependency (the database) is down or the request timed out")
        }
    });
    if let Some(request) = endpoint.request {
        let schema = json!({"$ref": format!("#/components/schemas/{}", request.name())});
        if endpoints::is_multipart(endpoint) {
            operation["requestBody"] = json!({
                "required": true,
                "description": "The signature covers the `meta` part's JSON, not the multipart body. At most 2 MiB of image (413 beyond); the type is read from the content.",
                "content": {"multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["meta", "file"],
                        "properties": {
                            "meta": schema,
                            "file": {"type": "string", "contentMediaType": "application/octet-stream", "description": "A JPG, PNG or BMP image, at most 2 MiB."}
                        }
                    },
                    "encoding": {"meta": {"contentType": "application/json"}, "file": {"contentType": "image/jpeg, image/png, image/bmp"}}
                }}
            });
            operation["responses"]["413"] =
                error_response("PARAM_ERROR: the image is larger than 2 MiB");
        } else {
            operation["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": schema}}
            });
            operation["parameters"]
                .as_array_mut()
                .expect("parameters are an array")
                .push(json!({"$ref": "#/components/parameters/Content-Type"}));
        }
    }
    operation
}

/// The document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for endpoint in ENDPOINTS {
        let item = paths.entry(endpoint.path).or_insert_with(|| json!({}));
        item[endpoint.method.to_ascii_lowercase()] = operation(endpoint);
        for body in endpoint.request.into_iter().chain([endpoint.response]) {
            schemas.insert(body.name().to_owned(), body.json_schema());
        }
    }
    schemas.insert("ErrorBody".to_owned(), schema::error_body());
    let header =
        |description: &str| json!({"schema": {"type": "string"}, "description": description});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "card-member: the WeChat Pay brand card-member API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every request is signed (WECHATPAY-BRAND-SHA256-RSA2048) and every 2xx answer is signed by the WeChat Pay key. See PROTOCOL.md."
        },
        "servers": [
            {"url": card_member_protocol::PRIMARY_BASE_URL, "description": "primary (nearest access point)"},
            {"url": card_member_protocol::BACKUP_BASE_URL, "description": "backup (remote access point), after a connection failure"}
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "brandSignature": {
                    "type": "apiKey", "in": "header", "name": "Authorization",
                    "description": "WECHATPAY-BRAND-SHA256-RSA2048 brand_id=\"…\",nonce_str=\"…\",signature=\"…\",timestamp=\"…\",serial_no=\"…\": RSASSA-PKCS1-v1_5 SHA-256 by the brand API certificate key over METHOD\\nTARGET\\nTIMESTAMP\\nNONCE\\nBODY\\n."
                }
            },
            "parameters": {
                "Authorization": {"name": "Authorization", "in": "header", "required": true,
                    "schema": {"type": "string", "pattern": "^WECHATPAY-BRAND-SHA256-RSA2048 "}, "description": "The request signature."},
                "Wechatpay-Serial": {"name": "Wechatpay-Serial", "in": "header", "required": true,
                    "schema": {"type": "string", "pattern": "^PUB_KEY_ID_[0-9]+$"}, "description": "The WeChat Pay public key ID associated with the brand."},
                "Accept": {"name": "Accept", "in": "header", "required": true, "schema": {"type": "string", "const": "application/json"}},
                "Content-Type": {"name": "Content-Type", "in": "header", "required": true, "schema": {"type": "string", "const": "application/json"}}
            },
            "headers": {
                "Request-ID": header("`<request id>-<internal error number>`, `-0` on success; on every response."),
                "Wechatpay-Nonce": header("The response signature's nonce."),
                "Wechatpay-Timestamp": header("The response signature's Unix time; reject 5 minutes or more off."),
                "Wechatpay-Serial": header("The WeChat Pay public key ID that signed."),
                "Wechatpay-Signature": header("Base64 RSASSA-PKCS1-v1_5 SHA-256 over timestamp\\nnonce\\nbody\\n."),
                "Wechatpay-Signature-Type": header("WECHATPAY-BRAND-SHA256-RSA2048")
            },
            "schemas": schemas
        }
    })
}
