//! What an operator and an integrator in another language get: the OpenAPI
//! document (checked against the spec's examples and real answers), the
//! metrics, and an unauthenticated health check.

use serde_json::{Value, json};

use crate::helpers::{CARD_ID, OPENID, Outgoing, most_admitted, seed_request, spawn_app};

/// Every API route, as the endpoint table describes it: method (lower
/// case, as OpenAPI writes it) and path template.
fn routes() -> Vec<(String, &'static str)> {
    card_member_protocol::endpoints::ENDPOINTS
        .iter()
        .map(|endpoint| (endpoint.method.to_ascii_lowercase(), endpoint.path))
        .collect()
}

/// A concrete target for a path template.
fn target(path: &str) -> String {
    path.replace("{user_card_code}", "478515832665")
        .replace("{card_id}", CARD_ID)
}

/// Validates `value` against a JSON Schema `schema` (the keywords the
/// document uses), resolving `$ref`s in `document`.
fn validate(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let target = document
            .pointer(reference.trim_start_matches('#'))
            .ok_or(format!("no {reference}"))?;
        return validate(document, target, value, at);
    }
    if let Some(kind) = schema.get("type").and_then(Value::as_str) {
        let ok = match kind {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            other => return Err(format!("{at}: unsupported type {other}")),
        };
        if !ok {
            return Err(format!("{at}: not a {kind}"));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} not in enum"));
    }
    if let Some(text) = value.as_str() {
        let chars = text.chars().count() as u64;
        if schema
            .get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|max| chars > max)
        {
            return Err(format!("{at}: longer than maxLength"));
        }
        if schema
            .get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|min| chars < min)
        {
            return Err(format!("{at}: shorter than minLength"));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && !regex::Regex::new(pattern).unwrap().is_match(text)
        {
            return Err(format!("{at}: {text:?} does not match {pattern}"));
        }
    }
    if let Some(number) = value.as_i64()
        && (schema
            .get("minimum")
            .and_then(Value::as_i64)
            .is_some_and(|min| number < min)
            || schema
                .get("maximum")
                .and_then(Value::as_i64)
                .is_some_and(|max| number > max))
    {
        return Err(format!("{at}: {number} out of range"));
    }
    if let Some(items) = value.as_array() {
        if schema
            .get("maxItems")
            .and_then(Value::as_u64)
            .is_some_and(|max| items.len() as u64 > max)
        {
            return Err(format!("{at}: too many items"));
        }
        if let Some(item_schema) = schema.get("items") {
            for (index, item) in items.iter().enumerate() {
                validate(document, item_schema, item, &format!("{at}/{index}"))?;
            }
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !object.contains_key(required.as_str().unwrap()) {
                return Err(format!("{at}: missing {required}"));
            }
        }
        for (key, item) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(property) => validate(document, property, item, &format!("{at}/{key}"))?,
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("{at}: unknown property {key}"));
                }
                None => {}
            }
        }
    }
    Ok(())
}

fn schema(document: &Value, name: &str) -> Value {
    document["components"]["schemas"][name].clone()
}

#[tokio::test]
async fn openapi_document_lists_every_route_and_every_route_answers() {
    let app = spawn_app().await;
    let response = app.send(&Outgoing::unsigned("GET", "/openapi.json")).await;
    assert_eq!(response.status, 200);
    let document = response.json();
    assert_eq!(document["openapi"], "3.1.0");
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    documented.sort();
    let mut expected: Vec<(String, String)> = routes()
        .into_iter()
        .map(|(m, p)| (m, p.to_owned()))
        .collect();
    expected.sort();
    assert_eq!(documented, expected);
    for (method, path) in routes() {
        let answer = app
            .send(&Outgoing::unsigned(&method.to_uppercase(), &target(path)))
            .await;
        assert_eq!(
            answer.status, 401,
            "{method} {path} is routed (and needs a signature)"
        );
        let operation = &document["paths"][path][&method];
        let parameters = operation["parameters"].to_string();
        assert!(
            parameters.contains("Authorization") && parameters.contains("Wechatpay-Serial"),
            "{method} {path}"
        );
        for status in ["200", "400", "401", "404", "429", "500"] {
            assert!(
                operation["responses"].get(status).is_some(),
                "{method} {path} documents {status}"
            );
        }
    }
}

#[tokio::test]
async fn openapi_schemas_accept_the_seed_examples_and_real_answers_and_refuse_bad_ones() {
    let app = spawn_app().await;
    let document = app
        .send(&Outgoing::unsigned("GET", "/openapi.json"))
        .await
        .json();
    let update = schema(&document, "UpdateUserCardRequest");
    let user_card = schema(&document, "UserCard");
    validate(&document, &update, &seed_request(), "").unwrap();
    let seed_response: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../protocol/tests/fixtures/seed_response.json"
        ))
        .unwrap(),
    )
    .unwrap();
    validate(&document, &user_card, &seed_response, "").unwrap();

    let answer = app
        .update(&app.seed_request("13800138000", "1990-01-01"))
        .await;
    validate(&document, &user_card, &answer.json(), "").unwrap();
    let error = app
        .update(&json!({"card_id": CARD_ID, "openid": OPENID, "card_color": "red"}))
        .await;
    validate(
        &document,
        &schema(&document, "ErrorBody"),
        &error.json(),
        "",
    )
    .unwrap();

    for bad in [
        json!({"card_id": CARD_ID, "openid": OPENID, "card_color": "red"}),
        json!({"card_id": CARD_ID}),
        json!({"card_id": CARD_ID, "openid": OPENID, "nickname": "x"}),
        json!({"card_id": CARD_ID, "openid": OPENID, "level": "十一个字符十一个字符十"}),
        json!({"card_id": CARD_ID, "openid": OPENID, "valid_date_information": {"type": "FIX_TERM", "available_day_after_receive": 10959}}),
    ] {
        assert!(validate(&document, &update, &bad, "").is_err(), "{bad}");
    }
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_code_rsa_operations_with_their_cpu_time_and_rate_limits()
 {
    let app = spawn_app().await;
    app.update(&app.seed_request("13800138000", "1990-01-01"))
        .await
        .user_card(&app);
    app.update(&json!({"card_id": CARD_ID, "openid": OPENID, "card_color": "red"}))
        .await;
    // Ten more at once, past the brand's limit (one after another, a
    // loaded machine may answer them slowly enough for the bucket to refill).
    let bodies: Vec<_> = (0..10)
        .map(|i| json!({"card_id": CARD_ID, "openid": OPENID, "level": format!("m{i}")}))
        .collect();
    futures_util::future::join_all(bodies.iter().map(|body| app.update(body))).await;
    let response = app.send(&Outgoing::unsigned("GET", "/metrics")).await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("Content-Type")
            .unwrap()
            .starts_with("text/plain")
    );
    let text = String::from_utf8(response.body).unwrap();
    let route = "/brand/card-member/user-cards/{user_card_code}";
    assert!(text.contains(&format!("card_member_requests_total{{route=\"{route}\",method=\"PATCH\",status=\"200\",code=\"\"}}")), "{text}");
    assert!(text.contains(&format!("card_member_requests_total{{route=\"{route}\",method=\"PATCH\",status=\"400\",code=\"PARAM_ERROR\"}} 1")), "{text}");
    assert!(text.contains("card_member_rate_limited_brands 1"), "{text}");
    assert!(
        text.contains("card_member_rsa_private_key_operations_total{kind=\"oaep_decrypt\"} 2"),
        "{text}"
    );
    // What those operations cost, on the thread CPU clock and the wall
    // clock: the figures the benchmark compares with its floor.
    let seconds = |name: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {text}"))
    };
    let cpu = seconds("card_member_rsa_private_key_cpu_seconds_total");
    let wall = seconds("card_member_rsa_private_key_wall_seconds_total");
    assert!(cpu > 0.0 && wall > 0.0, "cpu {cpu} wall {wall}");
    assert!(cpu <= wall * 1.01 + 1e-4, "cpu {cpu} wall {wall}");
    assert!(
        text.contains(&format!(
            "card_member_request_duration_seconds_count{{route=\"{route}\"}}"
        )),
        "{text}"
    );
    assert!(
        text.contains("card_member_database_duration_seconds_count"),
        "{text}"
    );
    assert!(text.contains("card_member_build_info{version=\""), "{text}");
    assert!(
        !text.contains(&app.brand.brand_id),
        "brands are never labels"
    );
}

#[tokio::test]
async fn every_described_endpoint_is_served_and_no_undescribed_method_is() {
    let app = spawn_app().await;
    let described = routes();
    for (_, path) in &described {
        for method in ["get", "post", "patch", "put", "delete"] {
            let answer = app
                .send(&Outgoing::unsigned(&method.to_uppercase(), &target(path)))
                .await;
            if described.contains(&(method.to_owned(), *path)) {
                answer.assert_error(401, "SIGN_ERROR");
            } else {
                assert_eq!(
                    answer.status, 405,
                    "{method} {path} is not described, so not served"
                );
            }
        }
    }
    let beside = app
        .send(&Outgoing::unsigned(
            "GET",
            "/brand/card-member/no-such-resource",
        ))
        .await;
    assert_eq!(
        beside.status, 404,
        "an undescribed path under the API prefix"
    );
}

#[tokio::test]
async fn metrics_are_openmetrics_to_a_scraper_that_asks_and_plain_text_otherwise() {
    let app = spawn_app().await;
    let mut asks = Outgoing::unsigned("GET", "/metrics");
    asks.set_header(
        "Accept",
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    );
    let answer = app.send(&asks).await;
    assert!(
        answer
            .header("Content-Type")
            .unwrap()
            .starts_with("application/openmetrics-text; version=1.0.0")
    );
    assert!(String::from_utf8(answer.body).unwrap().ends_with("# EOF\n"));
    let plain = app.send(&Outgoing::unsigned("GET", "/metrics")).await;
    assert!(
        plain
            .header("Content-Type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
}

#[tokio::test]
async fn every_endpoint_refuses_a_request_past_its_burst_with_429_before_its_handler_runs() {
    let app = spawn_app().await;
    for endpoint in card_member_protocol::endpoints::ENDPOINTS {
        let target = target(endpoint.path);
        // A body no handler accepts: a request the limiter lets through is
        // answered by its handler (400 or 404; a read of the development
        // card 200), one it refuses is 429.
        let body: &[u8] = if endpoint.method == "GET" {
            b""
        } else {
            b"{\"unknown\":1}"
        };
        // Twice the burst at once: the burst is let through (each endpoint
        // has its own bucket), no more than what refilled meanwhile.
        let requests: Vec<_> = (0..2 * endpoint.per_second)
            .map(|_| {
                let mut request = app.signed(endpoint.method, &target, body);
                if card_member_protocol::endpoints::is_multipart(endpoint) {
                    // Signed over the meta part; the image a few bytes.
                    request.body = b"--b\r\nContent-Disposition: form-data; name=\"meta\"\r\n\r\n{\"unknown\":1}\r\n--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nxx\r\n--b--\r\n".to_vec();
                    request.set_header("Content-Type", "multipart/form-data; boundary=b");
                }
                request
            })
            .collect();
        let (statuses, elapsed) = app.burst(&requests).await;
        let admitted = statuses.iter().filter(|status| **status != 429).count();
        let most = most_admitted(endpoint.per_second, elapsed);
        assert!(
            most < requests.len(),
            "{}: the burst took {elapsed:?}, too long to show its limit",
            endpoint.name
        );
        assert!(
            (endpoint.per_second as usize..=most).contains(&admitted),
            "{} {}: {} let through of {} in {elapsed:?} (burst {}): {statuses:?}",
            endpoint.method,
            endpoint.path,
            admitted,
            requests.len(),
            endpoint.per_second
        );
        assert!(
            statuses
                .iter()
                .all(|status| matches!(status, 200 | 400 | 404 | 429)),
            "{}: what is let through reaches its handler: {statuses:?}",
            endpoint.name
        );
    }
}
