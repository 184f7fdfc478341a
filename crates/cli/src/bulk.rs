//! `card-member bulk update`: one update per row of a CSV or JSONL file,
//! at the brand's rate limit, resumable.
//!
//! Every row is checked before anything is sent. Rows are sent with at most
//! as many in flight as the endpoint allows per second, paced by the SDK's
//! limiter, so the run provokes no 429.
//!
//! **The journal** (`INPUT.journal`, JSON lines, each written and fsynced
//! before the next step) makes a killed run safe to start again:
//! - before a row is sent, its signed request is journalled (`sending`);
//! - its outcome follows (`done` or `failed`).
//!
//! A rerun skips rows with an outcome. A row left `sending` may or may not
//! have been applied: the rerun sends the *same signed request* again. The
//! server accepts a nonce once, so if the first copy was applied the resend
//! is refused as a replay (the row counts as done) and otherwise it is
//! applied now: no row is applied twice and none is skipped. A journalled
//! request older than the 5-minute signature window can no longer be sent;
//! such a row is reported "in doubt" for a person to check, never resent.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use card_member_client::{Client, Error, SignedRequest, UserCardUpdate};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::input::CardInput;
use crate::unix_now;

/// The update endpoint's limit: requests per second, and so the most rows
/// in flight at once.
const CONCURRENCY: usize = 5;

/// One row to send.
#[derive(Debug)]
struct Row {
    number: usize,
    code: String,
    update: UserCardUpdate,
}

/// A row that could not be read or breaks a rule.
#[derive(Debug, Serialize)]
struct Rejected {
    row: usize,
    user_card_code: String,
    status: Option<u16>,
    code: String,
    message: String,
    request_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Entry {
    Start {
        input_sha256: String,
    },
    Sending {
        row: usize,
        method: String,
        target: String,
        body: String,
        authorization: String,
        timestamp: i64,
    },
    Done {
        row: usize,
        request_id: Option<String>,
        replayed: bool,
    },
    Failed {
        row: usize,
        status: Option<u16>,
        code: String,
        message: String,
        request_id: Option<String>,
    },
}

/// What the journal says of a row.
enum Known {
    Finished,
    Sending(SignedRequest),
}

struct Journal {
    file: Mutex<File>,
}

impl Journal {
    fn append(&self, entry: &Entry) -> Result<(), String> {
        let mut line = serde_json::to_vec(entry).expect("journal entries serialise");
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(&line)
            .and_then(|()| file.sync_data())
            .map_err(|err| format!("cannot write the journal: {err}"))
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn sibling(input: &Path, suffix: &str) -> PathBuf {
    let mut name = input.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    input.with_file_name(name)
}

/// Reads the rows of a `.csv` (a header row of API field names) or `.jsonl`
/// (one JSON object per line) file.
fn read_rows(path: &Path, bytes: &[u8]) -> Result<(Vec<Row>, Vec<Rejected>), String> {
    let mut rows = Vec::new();
    let mut rejected = Vec::new();
    let mut take = |number: usize, input: Result<CardInput, String>| match input.and_then(|input| {
        let code = input
            .user_card_code
            .clone()
            .ok_or("user_card_code is required")?;
        Ok((code, input.into_update()?))
    }) {
        Ok((code, update)) => rows.push(Row {
            number,
            code,
            update,
        }),
        Err(message) => rejected.push(Rejected {
            row: number,
            user_card_code: String::new(),
            status: None,
            code: "INVALID_ROW".into(),
            message,
            request_id: None,
        }),
    };
    match path.extension().and_then(|e| e.to_str()) {
        Some("jsonl") => {
            for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                take(
                    index + 1,
                    serde_json::from_slice(line).map_err(|err| err.to_string()),
                );
            }
        }
        Some("csv") => {
            let mut reader = csv::Reader::from_reader(bytes);
            let headers = reader.headers().map_err(|err| err.to_string())?.clone();
            for (index, record) in reader.records().enumerate() {
                let input = record
                    .map_err(|err| err.to_string())
                    .and_then(|record| csv_row(&headers, &record));
                take(index + 1, input);
            }
        }
        _ => {
            return Err(format!(
                "{}: the input must be a .csv or .jsonl file",
                path.display()
            ));
        }
    }
    Ok((rows, rejected))
}

/// A CSV row: columns named like the API's fields; `valid_date_type` and
/// the three validity columns make `valid_date_information`. An empty cell
/// is an absent field.
fn csv_row(headers: &csv::StringRecord, record: &csv::StringRecord) -> Result<CardInput, String> {
    let mut object = serde_json::Map::new();
    let mut validity = serde_json::Map::new();
    for (name, value) in headers.iter().zip(record.iter()) {
        if value.is_empty() {
            continue;
        }
        match name {
            "valid_date_type" => {
                validity.insert("type".into(), value.into());
            }
            "available_begin_time" | "available_end_time" => {
                validity.insert(name.into(), value.into());
            }
            "available_day_after_receive" => {
                let days: i64 = value
                    .parse()
                    .map_err(|_| format!("{name} {value:?} is not a number"))?;
                validity.insert(name.into(), days.into());
            }
            "user_card_code" | "card_id" | "openid" | "card_color" | "card_picture_url"
            | "phone_number" | "level" | "attach" => {
                object.insert(name.into(), value.into());
            }
            other => return Err(format!("unknown column {other:?}")),
        }
    }
    if !validity.is_empty() {
        object.insert("valid_date_information".into(), validity.into());
    }
    serde_json::from_value(object.into()).map_err(|err| err.to_string())
}

fn read_journal(path: &Path, input_sha256: &str) -> Result<HashMap<usize, Known>, String> {
    let mut known = HashMap::new();
    let Ok(file) = File::open(path) else {
        return Ok(known);
    };
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        let Ok(entry) = serde_json::from_str::<Entry>(&line) else {
            // A line cut short by a kill is the last one; anything before it is whole.
            continue;
        };
        match entry {
            Entry::Start { input_sha256: hash } if hash != input_sha256 && index == 0 => {
                return Err(format!(
                    "{} belongs to another version of the input; move it away to start over",
                    path.display()
                ));
            }
            Entry::Start { .. } => {}
            Entry::Sending {
                row,
                method,
                target,
                body,
                authorization,
                timestamp,
            } => {
                known.insert(
                    row,
                    Known::Sending(SignedRequest {
                        method,
                        target,
                        body: body.into_bytes(),
                        authorization,
                        timestamp,
                    }),
                );
            }
            Entry::Done { row, .. } | Entry::Failed { row, .. } => {
                known.insert(row, Known::Finished);
            }
        }
    }
    Ok(known)
}

/// The outcome counts of a run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Rows in the input.
    pub rows: usize,
    /// Rows applied by this run (replays of applied rows included).
    pub applied: usize,
    /// Rows finished by an earlier run.
    pub already_done: usize,
    /// Rows refused (invalid, or by the API).
    pub failed: usize,
    /// Rows answered 429 (should stay 0).
    pub rate_limited: usize,
    /// Rows that may or may not have been applied.
    pub in_doubt: usize,
}

/// Options of a bulk run.
#[derive(Debug, Clone)]
pub struct BulkOptions {
    /// The input file.
    pub input: PathBuf,
    /// Send the valid rows even if some rows are invalid.
    pub skip_invalid: bool,
}

/// The progress line: a bar, rows done, rate and ETA, on a terminal only
/// (hidden when stderr is a pipe or a file; the summary line says it all).
fn progress_bar(total: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("[{bar:30}] {pos}/{len} rows  {per_sec}  ETA {eta}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar
}

enum Outcome {
    Applied,
    Replayed,
    Failed(Rejected),
    RateLimited(Rejected),
    InDoubt,
}

async fn send_row(
    client: &Client,
    journal: &Journal,
    row: &Row,
    request: SignedRequest,
    resend: bool,
) -> Result<Outcome, String> {
    if !resend {
        journal.append(&Entry::Sending {
            row: row.number,
            method: request.method.clone(),
            target: request.target.clone(),
            body: String::from_utf8(request.body.clone()).expect("request bodies are JSON"),
            authorization: request.authorization.clone(),
            timestamp: request.timestamp,
        })?;
    }
    let result = client.send_signed_update(&request).await;
    let rejected = |error: &Error| {
        let api = error.api();
        Rejected {
            row: row.number,
            user_card_code: row.code.clone(),
            status: api.map(|api| api.status),
            code: api.map_or_else(|| "TRANSPORT".to_owned(), |api| api.code.clone()),
            message: api.map_or_else(
                || card_member_client::error_chain(error),
                |api| api.message.clone(),
            ),
            request_id: error.request_id().map(str::to_owned),
        }
    };
    let outcome = match result {
        Ok(_) => Outcome::Applied,
        Err(error) if resend && is_replay(&error) => Outcome::Replayed,
        Err(error) if error.may_have_been_applied() => Outcome::InDoubt,
        Err(error) if error.api().is_some_and(|api| api.status == 429) => {
            Outcome::RateLimited(rejected(&error))
        }
        Err(error) => Outcome::Failed(rejected(&error)),
    };
    match &outcome {
        Outcome::Applied | Outcome::Replayed => journal.append(&Entry::Done {
            row: row.number,
            request_id: None,
            replayed: matches!(outcome, Outcome::Replayed),
        })?,
        Outcome::Failed(rejected) | Outcome::RateLimited(rejected) => {
            journal.append(&Entry::Failed {
                row: row.number,
                status: rejected.status,
                code: rejected.code.clone(),
                message: rejected.message.clone(),
                request_id: rejected.request_id.clone(),
            })?
        }
        Outcome::InDoubt => {}
    }
    Ok(outcome)
}

/// A resent request refused because its nonce was used: the first copy was
/// applied.
fn is_replay(error: &Error) -> bool {
    error
        .api()
        .is_some_and(|api| api.code == "SIGN_ERROR" && api.message.contains("nonce"))
}

/// Runs a bulk update; returns its summary (also printed on stderr).
pub(crate) async fn run(client: &Client, options: &BulkOptions) -> Result<Summary, String> {
    let bytes = std::fs::read(&options.input)
        .map_err(|err| format!("cannot read {}: {err}", options.input.display()))?;
    let input_sha256 = sha256_hex(&bytes);
    let (rows, mut rejected) = read_rows(&options.input, &bytes)?;
    let mut valid = Vec::with_capacity(rows.len());
    for row in rows {
        match client.validate_update(&row.code, &row.update) {
            Ok(()) => valid.push(row),
            Err(error) => rejected.push(Rejected {
                row: row.number,
                user_card_code: row.code.clone(),
                status: None,
                code: "PARAM_ERROR".into(),
                message: card_member_client::error_chain(&error),
                request_id: None,
            }),
        }
    }
    let total = valid.len() + rejected.len();
    if !rejected.is_empty() && !options.skip_invalid {
        for row in &rejected {
            eprintln!("row {} ({}): {}", row.row, row.user_card_code, row.message);
        }
        return Err(format!(
            "{} of {total} rows are invalid; nothing was sent (fix them, or pass --skip-invalid)",
            rejected.len()
        ));
    }

    let journal_path = sibling(&options.input, ".journal");
    let known = read_journal(&journal_path, &input_sha256)?;
    let fresh_journal = !journal_path.exists();
    // A run killed mid-write leaves a last line without its newline: end it,
    // so that the next entry starts on a line of its own.
    let cut_short =
        std::fs::read(&journal_path).is_ok_and(|bytes| bytes.last().is_some_and(|b| *b != b'\n'));
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&journal_path)
        .map_err(|err| format!("cannot open {}: {err}", journal_path.display()))?;
    if cut_short {
        file.write_all(b"\n")
            .map_err(|err| format!("cannot write the journal: {err}"))?;
    }
    let journal = Arc::new(Journal {
        file: Mutex::new(file),
    });
    if fresh_journal {
        journal.append(&Entry::Start {
            input_sha256: input_sha256.clone(),
        })?;
    }

    let mut summary = Summary {
        rows: total,
        failed: rejected.len(),
        ..Summary::default()
    };
    let mut jobs = Vec::new();
    for row in valid {
        match known.get(&row.number) {
            Some(Known::Finished) => summary.already_done += 1,
            Some(Known::Sending(request)) if unix_now() - request.timestamp < 290 => {
                jobs.push((row, Some(request.clone())));
            }
            Some(Known::Sending(_)) => {
                summary.in_doubt += 1;
                rejected.push(Rejected {
                    row: row.number,
                    user_card_code: row.code.clone(),
                    status: None,
                    code: "IN_DOUBT".into(),
                    message: "sent by an earlier run with no answer recorded, too long ago to resend safely; check the card".into(),
                    request_id: None,
                });
            }
            None => jobs.push((row, None)),
        }
    }

    let progress = progress_bar(jobs.len());
    let semaphore = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for (row, stored) in jobs {
        let permit = Arc::clone(&semaphore)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let client = client.clone();
        let journal = Arc::clone(&journal);
        let progress = progress.clone();
        tasks.spawn(async move {
            let resend = stored.is_some();
            let request = match stored {
                Some(request) => request,
                None => client
                    .sign_update(&row.code, &row.update)
                    .map_err(|err| card_member_client::error_chain(&err))?,
            };
            let outcome = send_row(&client, &journal, &row, request, resend).await;
            progress.inc(1);
            drop(permit);
            outcome
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(|err| err.to_string())?? {
            Outcome::Applied | Outcome::Replayed => summary.applied += 1,
            Outcome::InDoubt => summary.in_doubt += 1,
            Outcome::Failed(row) => {
                summary.failed += 1;
                rejected.push(row);
            }
            Outcome::RateLimited(row) => {
                summary.rate_limited += 1;
                summary.failed += 1;
                rejected.push(row);
            }
        }
    }

    progress.finish();
    let report = sibling(&options.input, ".failed.jsonl");
    if rejected.is_empty() {
        let _ = std::fs::remove_file(&report);
    } else {
        rejected.sort_by_key(|row| row.row);
        let mut text = String::new();
        for row in &rejected {
            text.push_str(&serde_json::to_string(row).expect("reports serialise"));
            text.push('\n');
        }
        std::fs::write(&report, text)
            .map_err(|err| format!("cannot write {}: {err}", report.display()))?;
    }
    let mut by_code: Vec<(String, usize)> = rejected
        .iter()
        .fold(HashMap::new(), |mut counts, row| {
            *counts.entry(row.code.clone()).or_insert(0) += 1;
            counts
        })
        .into_iter()
        .collect();
    by_code.sort();
    let codes: Vec<String> = by_code
        .iter()
        .map(|(code, n)| format!("{code}: {n}"))
        .collect();
    eprintln!(
        "{} rows: {} applied, {} already done, {} failed{}, {} rate-limited, {} in doubt{}",
        summary.rows,
        summary.applied,
        summary.already_done,
        summary.failed,
        if codes.is_empty() {
            String::new()
        } else {
            format!(" ({})", codes.join(", "))
        },
        summary.rate_limited,
        summary.in_doubt,
        if rejected.is_empty() {
            String::new()
        } else {
            format!("; report: {}", report.display())
        },
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_template_is_valid_and_hidden_off_a_terminal() {
        let bar = progress_bar(3);
        bar.inc(2);
        assert_eq!(bar.position(), 2);
        assert!(bar.is_hidden(), "the tests' stderr is not a terminal");
    }

    #[test]
    fn a_journal_line_cut_short_by_a_kill_is_skipped_and_the_rest_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.csv.journal");
        let start = serde_json::to_string(&Entry::Start {
            input_sha256: "h".into(),
        })
        .unwrap();
        let done = serde_json::to_string(&Entry::Done {
            row: 1,
            request_id: None,
            replayed: false,
        })
        .unwrap();
        std::fs::write(&path, format!("{start}\n{done}\n{{\"event\":\"sen")).unwrap();
        let known = read_journal(&path, "h").unwrap();
        assert!(matches!(known.get(&1), Some(Known::Finished)));
        assert_eq!(known.len(), 1);
        assert!(
            read_journal(&path, "other input").is_err(),
            "a journal of another input is refused"
        );
    }

    #[test]
    fn csv_rows_take_the_api_field_names_and_refuse_unknown_columns() {
        let (rows, rejected) = read_rows(
            Path::new("x.csv"),
            b"user_card_code,card_id,openid,level,valid_date_type,available_day_after_receive\nA,c,o,gold,FIX_TERM,30\nB,c,o,,,\n",
        )
        .unwrap();
        assert!(rejected.is_empty(), "{rejected:?}");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].update.level.as_deref(), Some("gold"));
        assert_eq!(
            rows[0]
                .update
                .valid_date_information
                .as_ref()
                .unwrap()
                .available_day_after_receive,
            Some(30)
        );
        assert_eq!(
            rows[1].update.level, None,
            "an empty cell is an absent field"
        );
        let (_, rejected) =
            read_rows(Path::new("x.csv"), b"user_card_code,colour\nA,red\n").unwrap();
        assert!(rejected[0].message.contains("unknown column"));
    }
}
