//! The console's layout, its pieces, and masking.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// The console's style: readable at 375 px and on a desktop. Table cells
/// wrap, long IDs anywhere (`overflow-wrap: anywhere`), so every column of
/// every table fits the window from 800 px up; narrower, a table scrolls
/// within its box.
const STYLE: &str = "
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,sans-serif;color:#1c2430;background:#f5f7fa}
header{background:#1c2430;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:.4rem 1rem;align-items:center}
header a{color:#cfe0ff;text-decoration:none}header a.here{color:#fff;font-weight:600}header strong{margin-right:1rem}
main{padding:1rem;max-width:1200px;margin:0 auto}h1{font-size:1.3rem;margin:.2rem 0 1rem}h2{font-size:1.05rem;margin:1.4rem 0 .5rem}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}.card{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:.7rem .9rem;min-width:10rem;flex:1}
.card b{display:block;font-size:1.4rem}.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #e3e8ee;padding:.35rem .5rem;text-align:left;font-size:.9rem;overflow-wrap:anywhere}th{background:#eef2f6;white-space:nowrap}
table.kv td{white-space:normal;word-break:break-word}table.kv th{width:1%}
form.inline{display:inline}input,select,button{font:inherit;padding:.3rem .5rem;margin:.15rem 0}button{cursor:pointer}
form.stack{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:.7rem;margin:.5rem 0;display:flex;flex-wrap:wrap;gap:.4rem;align-items:center}
.ok{color:#1d7a3a}.bad{color:#b3261e}.muted{color:#667}pre{background:#fff;border:1px solid #dde3ea;padding:.6rem;overflow-x:auto;font-size:.85rem}
svg{background:#fff;border:1px solid #dde3ea;border-radius:6px;width:100%;height:auto}
";

/// The pages, for the navigation.
const PAGES: [(&str, &str); 8] = [
    ("overview", "/console/"),
    ("brands", "/console/brands"),
    ("templates", "/console/templates"),
    ("user cards", "/console/cards"),
    ("requests", "/console/requests"),
    ("notifications", "/console/notifications"),
    ("simulator", "/console/simulator"),
    ("faults", "/console/faults"),
];

/// A page: the navigation (the simulator only when the simulation is on),
/// its title and body; `refresh` seconds make it reload itself.
pub(crate) fn page(
    title: &str,
    here: &str,
    simulation: bool,
    refresh: Option<u32>,
    body: Markup,
) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                link rel="icon" href="data:,";
                @if let Some(seconds) = refresh {
                    meta http-equiv="refresh" content=(seconds);
                }
                title { (title) " · card-member console" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "card-member" }
                    @for (name, href) in PAGES {
                        @if !matches!(name, "simulator" | "faults") || simulation {
                            a href=(href) class=[(name == here).then_some("here")] { (name) }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    Html(markup.into_string()).into_response()
}

/// A refusal page.
pub(crate) fn refusal(status: StatusCode, message: &str) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "card-member console" } }
            body { p { (message) } }
        }
    };
    (status, Html(markup.into_string())).into_response()
}

/// A Unix millisecond time as shown: RFC 3339 in China Standard Time.
pub(crate) fn when(unix_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .map(|at| {
            card_member_protocol::datetime::format_rfc3339_millis(
                at,
                card_member_protocol::datetime::CHINA_STANDARD_TIME,
            )
        })
        .unwrap_or_default()
}

/// A hidden CSRF field.
pub(crate) fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// A phone number as shown: `138****8000`.
pub(crate) fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// Any other personal value as shown: its first and last character.
pub(crate) fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    match chars.len() {
        0 => String::new(),
        1 | 2 => "*".repeat(chars.len()),
        n => format!("{}{}{}", chars[0], "*".repeat(n - 2), chars[n - 1]),
    }
}

/// A chart of the last hour: bars of requests per second, a line of p99
/// latency (ms), drawn as SVG.
pub(crate) fn chart(rates: &[f64], p99s: &[f64]) -> Markup {
    let (width, height, pad) = (600.0_f64, 160.0_f64, 24.0_f64);
    let max_rate = rates.iter().copied().fold(0.0_f64, f64::max).max(1.0);
    let max_p99 = p99s.iter().copied().fold(0.0_f64, f64::max).max(1.0);
    let slot = (width - 2.0 * pad) / rates.len().max(1) as f64;
    let y = |value: f64, max: f64| height - pad - (value / max) * (height - 2.0 * pad);
    let line: String = p99s
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{:.1},{:.1}", pad + slot * (i as f64 + 0.5), y(*p, max_p99)))
        .collect::<Vec<_>>()
        .join(" ");
    html! {
        svg viewBox=(format!("0 0 {width} {height}")) role="img"
            aria-label="requests per second and p99 latency over the last hour" {
            @for (i, rate) in rates.iter().enumerate() {
                rect x=(format!("{:.1}", pad + slot * i as f64)) y=(format!("{:.1}", y(*rate, max_rate)))
                    width=(format!("{:.1}", (slot - 1.0).max(1.0))) height=(format!("{:.1}", height - pad - y(*rate, max_rate)))
                    fill="#8fb3e8" {}
            }
            polyline points=(line) fill="none" stroke="#b3261e" stroke-width="1.5" {}
            text x=(pad) y="14" font-size="11" fill="#1c2430" {
                (format!("requests/s (bars, max {max_rate:.2}) · p99 ms (line, max {max_p99:.1}) · last 60 minutes"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_data_is_masked() {
        assert_eq!(mask_phone("13800138000"), "138****8000");
        assert_eq!(mask_phone("123"), "***");
        assert_eq!(mask("1990-05-20"), "1********0");
        assert_eq!(mask("张三"), "**");
        assert_eq!(mask("王小明"), "王*明");
    }
}
