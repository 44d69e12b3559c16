//! Server configuration: defaults, then a TOML file, then `WEIR_*` environment variables and
//! command-line flags (clap merges those two), then [`Config::validate`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::topic::TopicConfig;

/// Request limits. Each protects memory: the broker holds a whole request body while it
/// validates it, and a whole fetch answer while it encodes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body (produce batch).
    pub body_bytes_max: usize,
    /// Largest record: key + value + header names and values.
    pub record_bytes_max: usize,
    /// Largest `max_records` a fetch may ask for.
    pub fetch_records_max: usize,
    /// Largest `max_bytes` a fetch may ask for.
    pub fetch_bytes_max: usize,
    /// Longest long-poll `wait_ms`.
    pub wait_ms_max: u64,
    /// Largest component upload: Python and JavaScript components are 10-20 MB.
    pub module_bytes_max: usize,
    /// Disk all modules may take, uploads and compiled code together.
    pub modules_bytes_max: u64,
    /// What the memory caps (`limits.memory_bytes_max`) of all live guest instances may add
    /// up to; an instance waits for room beyond it. 0: half the machine's memory.
    pub guest_memory_bytes_max: u64,
    /// Guest instances live at once (idle ones are dropped; a processor gets at most a quarter
    /// of them).
    pub guest_instances_max: u32,
    /// Most records one produce request may carry: each costs memory beyond its bytes.
    pub records_per_request_max: usize,
    /// Memory all requests in flight may hold together (each reserves about three times its
    /// body); beyond it requests get 503 `overloaded`. 0: a quarter of the machine's memory,
    /// at most 1 GiB.
    pub requests_memory_bytes_max: u64,
    /// Connections served at once (a few more are kept for `/healthz`). 0: what the open-file
    /// limit leaves after room for the logs' files.
    pub connections_max: usize,
    /// Memory all tables (topics read as the latest value per key) may hold together, keys and
    /// values; a table that would pass it is dropped and answers 507 `table_too_large`. 0: a
    /// quarter of the machine's memory.
    pub tables_bytes_max: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes_max: 64 * 1024 * 1024,
            record_bytes_max: 1024 * 1024,
            fetch_records_max: 100_000,
            fetch_bytes_max: 64 * 1024 * 1024,
            wait_ms_max: 60_000,
            module_bytes_max: 128 * 1024 * 1024,
            modules_bytes_max: 4 * 1024 * 1024 * 1024,
            guest_memory_bytes_max: 0,
            guest_instances_max: 256,
            records_per_request_max: 100_000,
            requests_memory_bytes_max: 0,
            connections_max: 0,
            tables_bytes_max: 0,
        }
    }
}

/// The HTTP listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Time a client has to send a request's headers, and to start the next request on a
    /// kept-alive connection; silent connections are closed after it.
    pub header_read_timeout_ms: u64,
    /// Longest pause while a request body arrives before the request fails with 408.
    pub body_read_timeout_ms: u64,
    /// PEM certificate chain: with `tls_key`, the listener speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Origins a browser page may call the API from (CORS): none by default; `["*"]` for any.
    pub cors_origins: Vec<String>,
    /// Host names the broker answers to (the `Host` header, port aside), against DNS
    /// rebinding. Empty: `localhost`, `127.0.0.1` and `::1` when listening on loopback; any
    /// name otherwise.
    pub hosts: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 10_000,
            tls_cert: None,
            tls_key: None,
            cors_origins: Vec::new(),
            hosts: Vec::new(),
        }
    }
}

/// Authentication.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The bootstrap admin token (at least 16 characters; better from `WEIR_ADMIN_TOKEN` than
    /// from a file). Setting it turns authentication on.
    pub admin_token: Option<String>,
    /// Serve without authentication on an address other than loopback. Off: such a broker
    /// refuses to start.
    pub insecure: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// Settings a new topic gets unless its create request says otherwise.
    pub defaults: TopicConfig,
    pub limits: Limits,
    pub http: HttpConfig,
    pub auth: AuthConfig,
    /// How often retention and idle-segment rolls run.
    pub retention_check_interval_ms: u64,
    /// Longest silence on an SSE stream before a comment heartbeat.
    pub sse_heartbeat_ms: u64,
    /// Log bytes between two sparse index entries.
    pub index_interval_bytes: u32,
    /// Most bytes of an active segment's offset index (entries are written as they come; the
    /// segment rolls when it is full).
    pub index_bytes_max: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("weir-data"),
            defaults: TopicConfig::default(),
            limits: Limits::default(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            retention_check_interval_ms: 60_000,
            sse_heartbeat_ms: 15_000,
            index_interval_bytes: 4096,
            index_bytes_max: 10 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// `requests_memory_bytes_max`, with 0 resolved against the machine's memory.
    pub fn requests_memory_bytes(&self) -> u64 {
        if self.requests_memory_bytes_max > 0 {
            return self.requests_memory_bytes_max;
        }
        (machine_memory_bytes() / 4).clamp(64 * 1024 * 1024, 1024 * 1024 * 1024)
    }

    /// `tables_bytes_max`, with 0 resolved against the machine's memory.
    pub fn tables_bytes(&self) -> u64 {
        if self.tables_bytes_max > 0 {
            return self.tables_bytes_max;
        }
        machine_memory_bytes() / 4
    }

    /// `guest_memory_bytes_max`, with 0 resolved against the machine's memory.
    pub fn guest_memory_bytes(&self) -> u64 {
        if self.guest_memory_bytes_max > 0 {
            return self.guest_memory_bytes_max;
        }
        machine_memory_bytes() / 2
    }

    /// `connections_max`, with 0 resolved against the open-file limit: half the descriptors
    /// (at least 256) stay for the logs' files (three per segment of every partition).
    pub fn connections(&self, open_files: u64) -> usize {
        if self.connections_max > 0 {
            return self.connections_max;
        }
        let files = (open_files / 2).max(256);
        (open_files.saturating_sub(files) as usize)
            .saturating_sub(crate::http::CONNECTIONS_RESERVED)
            .clamp(16, 50_000)
    }
}

/// Physical memory, from `/proc/meminfo` (4 GiB when it cannot be read).
pub fn machine_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(4 << 30, |kb| kb * 1024)
}

/// Errors loading configuration; each names the file or setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Checks every setting for sense, naming the one that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.defaults
            .validate()
            .map_err(|m| ConfigError::Invalid(format!("defaults: {m}")))?;
        let l = &self.limits;
        if l.record_bytes_max == 0 || l.record_bytes_max > l.body_bytes_max {
            return Err(ConfigError::Invalid(format!(
                "limits.record_bytes_max must be 1 to limits.body_bytes_max ({}), got {}",
                l.body_bytes_max, l.record_bytes_max
            )));
        }
        if l.body_bytes_max > 1024 * 1024 * 1024 {
            return Err(ConfigError::Invalid(
                "limits.body_bytes_max must be at most 1 GiB".into(),
            ));
        }
        if l.fetch_records_max == 0 || l.fetch_bytes_max == 0 {
            return Err(ConfigError::Invalid(
                "limits.fetch_records_max and fetch_bytes_max must be positive".into(),
            ));
        }
        if self.retention_check_interval_ms == 0 || self.sse_heartbeat_ms == 0 {
            return Err(ConfigError::Invalid(
                "retention_check_interval_ms and sse_heartbeat_ms must be positive".into(),
            ));
        }
        // Each slot reserves address space for its memories up front (not RAM): 1024 slots
        // take a fraction of what x86-64 gives a process.
        if !(1..=1024).contains(&l.guest_instances_max) {
            return Err(ConfigError::Invalid(
                "limits.guest_instances_max must be 1 to 1024".into(),
            ));
        }
        if l.records_per_request_max == 0 {
            return Err(ConfigError::Invalid(
                "limits.records_per_request_max must be positive".into(),
            ));
        }
        let h = &self.http;
        if h.header_read_timeout_ms == 0 || h.body_read_timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "http.header_read_timeout_ms and http.body_read_timeout_ms must be positive".into(),
            ));
        }
        if h.tls_cert.is_some() != h.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "http.tls_cert and http.tls_key go together: give both or neither".into(),
            ));
        }
        if let Some(t) = &self.auth.admin_token {
            let t = t.trim();
            let distinct: std::collections::BTreeSet<char> = t.chars().collect();
            if t.chars().count() < crate::auth::ADMIN_TOKEN_CHARS_MIN || distinct.len() < 8 {
                return Err(ConfigError::Invalid(format!(
                    "auth.admin_token must have at least {} characters, 8 of them different (try: head -c 24 /dev/urandom | base64)",
                    crate::auth::ADMIN_TOKEN_CHARS_MIN
                )));
            }
        }
        if self.auth.admin_token.is_none() && !self.auth.insecure && !self.addr.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "{} is not a loopback address and authentication is off: anyone who reaches the port could do anything. \
                 Set an admin token (WEIR_ADMIN_TOKEN or auth.admin_token), or pass --insecure to serve without one",
                self.addr
            )));
        }
        if self.index_interval_bytes == 0 || self.index_bytes_max < 64 {
            return Err(ConfigError::Invalid(
                "index_interval_bytes must be positive and index_bytes_max at least 64".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::FsyncPolicy;

    #[test]
    fn toml_overrides_only_what_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weir.toml");
        std::fs::write(
            &path,
            "data_dir = \"/tmp/x\"\n[defaults]\npartitions = 4\nfsync = \"never\"\n",
        )
        .unwrap();
        let c = Config::from_file(&path).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.defaults.partitions, 4);
        assert_eq!(c.defaults.fsync, FsyncPolicy::Never);
        assert_eq!(c.limits, Limits::default());
        c.validate().unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weir.toml");
        std::fs::write(&path, "adr = \"x\"\n").unwrap();
        assert!(Config::from_file(&path).unwrap_err().to_string().contains("adr"));
        let c = Config {
            limits: Limits {
                record_bytes_max: 0,
                ..Limits::default()
            },
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("record_bytes_max"));
    }
}
