//! Typed settings: defaults, then a TOML file, then `CARD_MEMBER_…`
//! environment variables, then command-line flags (applied by the caller).
//! The environment is read here and nowhere else.
//!
//! **Decision** (issue 12): this layering stays hand-written rather than
//! `figment`. It is about forty lines (a TOML table, the known keys
//! overlaid from the environment, one `serde` deserialisation with
//! `deny_unknown_fields`), and figment would need the same two special
//! cases spelled out anyway: only the known `CARD_MEMBER_*` variables may
//! be read (tests and tools set others, such as
//! `CARD_MEMBER_TEST_DATABASE_URL`, that must not be an unknown-key error),
//! and a variable is typed by its setting, not guessed from its text (a
//! data directory named `2026` stays a path). Its dependency tree would buy
//! nothing the tests do not already pin.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Every setting of the server. `Debug` hides the password of
/// `database_url`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where the database, keys and the development setup live.
    /// Default `./card-member-data`; env `CARD_MEMBER_DATA_DIR`.
    pub data_dir: PathBuf,
    /// The address to listen on. Default `127.0.0.1:8080`; env
    /// `CARD_MEMBER_LISTEN`.
    pub listen: String,
    /// The database. Default: the SQLite file `card-member.db` in the data
    /// directory; `sqlite:PATH` names another file; `postgres://…` (or
    /// `postgresql://…`) a PostgreSQL database, for several instances. Env
    /// `CARD_MEMBER_DATABASE_URL`.
    pub database_url: Option<String>,
    /// Most connections one instance opens to PostgreSQL. Default 16; env
    /// `CARD_MEMBER_DATABASE_MAX_CONNECTIONS`.
    pub database_max_connections: usize,
    /// The WeChat Pay platform private key (PKCS#8 PEM). Default
    /// `DATA_DIR/wechatpay/private_key.pem`, generated on first start. Env
    /// `CARD_MEMBER_WECHATPAY_PRIVATE_KEY_FILE`.
    pub wechatpay_private_key_file: Option<PathBuf>,
    /// The WeChat Pay public key ID (`PUB_KEY_ID_…`). Default: the contents
    /// of `DATA_DIR/wechatpay/public_key_id`, generated on first start. Env
    /// `CARD_MEMBER_WECHATPAY_PUBLIC_KEY_ID`.
    pub wechatpay_public_key_id: Option<String>,
    /// The 32-byte data key that seals personal data at rest (base64 in a
    /// file). Default `DATA_DIR/data.key`, generated on first start. Env
    /// `CARD_MEMBER_DATA_KEY_FILE`.
    pub data_key_file: Option<PathBuf>,
    /// Seconds a request may take before it is answered 503. Default 30;
    /// env `CARD_MEMBER_REQUEST_TIMEOUT_SECS`.
    pub request_timeout_secs: u64,
    /// Largest request body in bytes (413 beyond). Default 65536; env
    /// `CARD_MEMBER_BODY_LIMIT_BYTES`.
    pub body_limit_bytes: usize,
    /// Most threads for blocking work: SQLite calls, key and media files.
    /// Default 0: twice the cores, at least 4. RSA private-key operations
    /// do not use them: they run on the async workers, one per core, so
    /// that no more run at once than there are cores (BENCHMARKS.md). Env
    /// `CARD_MEMBER_BLOCKING_THREADS`.
    pub blocking_threads: usize,
    /// The log level (a `tracing` filter such as `info` or
    /// `card_member=debug,info`); `RUST_LOG` wins when set. Default `info`;
    /// env `CARD_MEMBER_LOG_LEVEL`.
    pub log_level: String,
    /// `text` (human-readable, the default) or `json` (one JSON object per
    /// line). Env `CARD_MEMBER_LOG_FORMAT`; flag `--log-format`.
    pub log_format: LogFormat,
    /// Most client connections open at once; at the cap a new connection is
    /// closed at once. Default 1000, lowered at start to what the open-file
    /// limit allows (the server raises its soft limit to the hard limit).
    /// Env `CARD_MEMBER_MAX_CONNECTIONS`.
    pub max_connections: usize,
    /// Seconds a connection has to deliver a whole request head, from when
    /// it opens or the first byte of its next request arrives. Default 10;
    /// env `CARD_MEMBER_HEADER_TIMEOUT_SECS`.
    pub header_timeout_secs: u64,
    /// Seconds a kept-alive connection may sit with no request in flight
    /// and nothing read or written. Default 30; env
    /// `CARD_MEMBER_IDLE_TIMEOUT_SECS`.
    pub idle_timeout_secs: u64,
    /// Connections one IP address may hold that have not yet delivered a
    /// whole request head; a quarter as many (at least 1) while more than
    /// 3/4 of `max_connections` are open, and for 10 s after the address
    /// was refused. Beyond it a new connection from that address is closed
    /// at once, unanswered. Default 32; env
    /// `CARD_MEMBER_MAX_UNFINISHED_PER_ADDRESS`.
    pub max_unfinished_per_address: usize,
    /// Seconds a connection has to deliver its request head while more than
    /// three quarters of `max_connections` are open (the header timeout
    /// shortens under pressure). Default 2; env
    /// `CARD_MEMBER_HEADER_TIMEOUT_UNDER_PRESSURE_SECS`.
    pub header_timeout_under_pressure_secs: u64,
    /// The server's TLS certificate chain (PEM). With `tls_key`, the server
    /// speaks HTTPS only. Default none (plain HTTP); env
    /// `CARD_MEMBER_TLS_CERT`. `card-member keys tls` writes a development
    /// pair.
    pub tls_cert: Option<PathBuf>,
    /// The TLS certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    /// Default none; env `CARD_MEMBER_TLS_KEY`.
    pub tls_key: Option<PathBuf>,
    /// On the first start in an empty data directory, create a demo brand,
    /// template and card, and `DATA_DIR/dev/credentials.json`. Default
    /// true; env `CARD_MEMBER_DEV_BOOTSTRAP`.
    pub dev_bootstrap: bool,
    /// The server's URL as clients reach it (e.g. behind a proxy), the
    /// base of the image URLs the upload answers. Default: `http://` (or
    /// `https://` with TLS) and the listen address. Env
    /// `CARD_MEMBER_PUBLIC_URL`.
    pub public_url: Option<String>,
    /// Whether the member's side may be played through `/simulate/…`
    /// (loopback clients only). Default: on in a data directory the
    /// development setup was made in, off otherwise. Env
    /// `CARD_MEMBER_SIMULATION`.
    pub simulation: Option<bool>,
    /// Whether requests refused for their signature, certificate serial,
    /// timestamp, nonce or a ciphertext are explained (`card-member
    /// explain`). Default: on in a data directory the development setup was
    /// made in, off otherwise. Env `CARD_MEMBER_EXPLAIN`.
    pub explain: Option<bool>,
    /// At most this many refusals explained per brand per second. Default
    /// 5; env `CARD_MEMBER_EXPLAIN_PER_BRAND_PER_SECOND`.
    pub explain_per_brand_per_second: u32,
    /// Divides the waits between notification retries (for sandboxes and
    /// tests: 1000 makes 15 s 15 ms). Default 1; env
    /// `CARD_MEMBER_NOTIFICATION_RETRY_SPEEDUP`.
    pub notification_retry_speedup: u64,
    /// Serve the console at `/console`. Default true; env
    /// `CARD_MEMBER_CONSOLE`.
    pub console: bool,
    /// Serve the console over plain HTTP on a non-loopback address too.
    /// Default false; env `CARD_MEMBER_CONSOLE_ALLOW_INSECURE`.
    pub console_allow_insecure: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("card-member-data"),
            listen: "127.0.0.1:8080".to_owned(),
            database_url: None,
            database_max_connections: 16,
            wechatpay_private_key_file: None,
            wechatpay_public_key_id: None,
            data_key_file: None,
            request_timeout_secs: 30,
            body_limit_bytes: 64 * 1024,
            blocking_threads: 0,
            log_level: "info".to_owned(),
            log_format: LogFormat::Text,
            max_connections: 1000,
            header_timeout_secs: 10,
            max_unfinished_per_address: 32,
            header_timeout_under_pressure_secs: 2,
            idle_timeout_secs: 30,
            tls_cert: None,
            tls_key: None,
            dev_bootstrap: true,
            public_url: None,
            simulation: None,
            explain: None,
            explain_per_brand_per_second: 5,
            notification_retry_speedup: 1,
            console: true,
            console_allow_insecure: false,
        }
    }
}

/// `database_url` with any password replaced by `** redacted **`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((credentials, host)) if credentials.contains(':') => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!(
                "{scheme}://{user}:{}@{host}",
                card_member_protocol::secret::REDACTED
            )
        }
        _ => url.to_owned(),
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("database_max_connections", &self.database_max_connections)
            .field(
                "wechatpay_private_key_file",
                &self.wechatpay_private_key_file,
            )
            .field("wechatpay_public_key_id", &self.wechatpay_public_key_id)
            .field("data_key_file", &self.data_key_file)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("blocking_threads", &self.blocking_threads)
            .field("log_level", &self.log_level)
            .field("log_format", &self.log_format)
            .field("max_connections", &self.max_connections)
            .field("header_timeout_secs", &self.header_timeout_secs)
            .field(
                "max_unfinished_per_address",
                &self.max_unfinished_per_address,
            )
            .field(
                "header_timeout_under_pressure_secs",
                &self.header_timeout_under_pressure_secs,
            )
            .field("idle_timeout_secs", &self.idle_timeout_secs)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("dev_bootstrap", &self.dev_bootstrap)
            .field("public_url", &self.public_url)
            .field("simulation", &self.simulation)
            .field("explain", &self.explain)
            .field(
                "explain_per_brand_per_second",
                &self.explain_per_brand_per_second,
            )
            .field(
                "notification_retry_speedup",
                &self.notification_retry_speedup,
            )
            .finish()
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A database to store in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file (one server process).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (any number of server processes).
    Postgres(String),
}

/// The environment variable prefix.
pub const ENV_PREFIX: &str = "CARD_MEMBER_";

const KEYS: &[&str] = &[
    "data_dir",
    "listen",
    "database_url",
    "database_max_connections",
    "wechatpay_private_key_file",
    "wechatpay_public_key_id",
    "data_key_file",
    "request_timeout_secs",
    "body_limit_bytes",
    "blocking_threads",
    "log_level",
    "log_format",
    "max_connections",
    "header_timeout_secs",
    "idle_timeout_secs",
    "max_unfinished_per_address",
    "header_timeout_under_pressure_secs",
    "tls_cert",
    "tls_key",
    "dev_bootstrap",
    "public_url",
    "simulation",
    "explain",
    "explain_per_brand_per_second",
    "notification_retry_speedup",
    "console",
    "console_allow_insecure",
];

/// Settings could not be loaded.
#[derive(Debug)]
pub struct SettingsError(String);

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SettingsError {}

impl Settings {
    /// Loads defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_from(file, std::env::vars())
    }

    /// [`Settings::load`] with the environment given explicitly.
    pub fn load_from(
        file: Option<&Path>,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|err| {
                    SettingsError(format!(
                        "cannot read settings file {}: {err}",
                        path.display()
                    ))
                })?;
                text.parse::<toml::Table>().map_err(|err| {
                    SettingsError(format!("settings file {}: {err}", path.display()))
                })?
            }
            None => toml::Table::new(),
        };
        if let Some(unknown) = table.keys().find(|key| !KEYS.contains(&key.as_str())) {
            return Err(SettingsError(format!(
                "unknown setting `{unknown}` in {}; known settings: {}",
                file.map(|p| p.display().to_string()).unwrap_or_default(),
                KEYS.join(", ")
            )));
        }
        let environment: BTreeMap<String, String> = environment.into_iter().collect();
        for key in KEYS {
            if let Some(value) = environment.get(&format!("{ENV_PREFIX}{}", key.to_uppercase())) {
                table.insert((*key).to_owned(), env_value(key, value));
            }
        }
        Self::deserialize(table).map_err(|err| SettingsError(format!("invalid settings: {err}")))
    }

    /// The blocking-thread limit to run with: [`Settings::blocking_threads`],
    /// or twice the cores and at least 4 when it is 0.
    pub fn effective_blocking_threads(&self) -> usize {
        if self.blocking_threads > 0 {
            return self.blocking_threads;
        }
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        (2 * cores).max(4)
    }

    /// The database `database_url` names.
    pub fn database(&self) -> Result<Database, SettingsError> {
        match self.database_url.as_deref() {
            None => Ok(Database::Sqlite(self.data_dir.join("card-member.db"))),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Database::Postgres(url.to_owned()))
            }
            Some(url) => url
                .strip_prefix("sqlite:")
                .map(|path| Database::Sqlite(PathBuf::from(path.trim_start_matches("//"))))
                .ok_or_else(|| {
                    SettingsError(format!(
                        "unsupported database_url {url:?}: use sqlite:PATH or postgres://…"
                    ))
                }),
        }
    }
}

/// Settings whose values are numbers or flags; every other one is text,
/// whatever its value looks like (a data directory named `2026` is a path).
const NUMBERS: &[&str] = &[
    "database_max_connections",
    "request_timeout_secs",
    "body_limit_bytes",
    "blocking_threads",
    "max_connections",
    "header_timeout_secs",
    "idle_timeout_secs",
    "max_unfinished_per_address",
    "header_timeout_under_pressure_secs",
    "explain_per_brand_per_second",
    "notification_retry_speedup",
];

fn env_value(key: &str, value: &str) -> toml::Value {
    if NUMBERS.contains(&key)
        && let Ok(number) = value.parse::<i64>()
    {
        toml::Value::Integer(number)
    } else if matches!(
        key,
        "dev_bootstrap" | "simulation" | "explain" | "console" | "console_allow_insecure"
    ) && let Ok(flag) = value.parse::<bool>()
    {
        toml::Value::Boolean(flag)
    } else {
        toml::Value::String(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_without_file_or_environment() {
        let settings = Settings::load_from(None, []).unwrap();
        assert_eq!(settings, Settings::default());
        assert_eq!(settings.listen, "127.0.0.1:8080");
        assert_eq!(
            settings.database().unwrap(),
            Database::Sqlite(PathBuf::from("card-member-data/card-member.db"))
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("settings.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nrequest_timeout_secs = 5\n",
        )
        .unwrap();
        let settings = Settings::load_from(
            Some(&file),
            [
                ("CARD_MEMBER_LISTEN".to_owned(), "127.0.0.1:9001".to_owned()),
                ("CARD_MEMBER_DEV_BOOTSTRAP".to_owned(), "false".to_owned()),
                ("CARD_MEMBER_DATA_DIR".to_owned(), "2026".to_owned()),
                ("OTHER".to_owned(), "x".to_owned()),
            ],
        )
        .unwrap();
        assert_eq!(settings.listen, "127.0.0.1:9001");
        assert_eq!(settings.request_timeout_secs, 5);
        assert!(!settings.dev_bootstrap);
        assert_eq!(
            settings.data_dir,
            PathBuf::from("2026"),
            "a numeric-looking path stays a path"
        );
    }

    #[test]
    fn database_url_chooses_the_backend() {
        let with = |url: &str| Settings {
            database_url: Some(url.to_owned()),
            ..Settings::default()
        };
        assert_eq!(
            with("sqlite:/tmp/x.db").database().unwrap(),
            Database::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            with("postgres://u@localhost/db").database().unwrap(),
            Database::Postgres("postgres://u@localhost/db".into())
        );
        assert!(with("mysql://localhost/db").database().is_err());
    }

    #[test]
    fn the_commented_example_file_loads_to_the_defaults() {
        let example = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/card-member.toml"
        );
        let settings = Settings::load_from(Some(Path::new(example)), []).unwrap();
        assert_eq!(settings, Settings::default());
    }

    #[test]
    fn every_setting_is_in_the_configuration_reference() {
        let reference = include_str!("../../../../docs/configuration.md");
        let example = include_str!("../../../../examples/card-member.toml");
        for key in KEYS {
            let variable = format!("{ENV_PREFIX}{}", key.to_uppercase());
            assert!(
                reference.contains(&format!("`{key}`")),
                "{key} is missing from docs/configuration.md"
            );
            assert!(
                reference.contains(&variable),
                "{variable} is missing from docs/configuration.md"
            );
            assert!(
                example.contains(&format!("{key} =")),
                "{key} is missing from examples/card-member.toml"
            );
        }
    }

    #[test]
    fn debug_hides_the_database_password() {
        let settings = Settings {
            database_url: Some("postgres://card:s3cret@db/card".into()),
            ..Settings::default()
        };
        let printed = format!("{settings:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(
            printed.contains("postgres://card:** redacted **@db/card"),
            "{printed}"
        );
        assert_eq!(
            redact_url("postgres://card@db/card"),
            "postgres://card@db/card"
        );
    }

    #[test]
    fn unknown_key_in_the_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("settings.toml");
        std::fs::write(&file, "listn = \"127.0.0.1:9000\"\n").unwrap();
        let err = Settings::load_from(Some(&file), []).unwrap_err();
        assert!(err.to_string().contains("unknown setting `listn`"), "{err}");
    }
}
