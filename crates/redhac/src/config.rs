//! Configuration: one plain struct, read from the environment with the
//! original redhac variable names and defaults, or built in code.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::{Error, Result};
use redhac_membership::HostEntry;

/// The configuration of one redhac member.
///
/// [`Config::default()`] is a standalone cache. [`Config::from_env`] reads
/// the variables below; every field is public and can be set in code.
///
/// | variable | field | default |
/// |---|---|---|
/// | `HA_MODE` | [`ha_mode`](Config::ha_mode) | `false` |
/// | `HA_HOSTS` | [`ha_hosts`](Config::ha_hosts) | empty |
/// | `HOSTNAME_OVERWRITE` | [`hostname_overwrite`](Config::hostname_overwrite) | the OS hostname |
/// | `CACHE_AUTH_TOKEN` | [`auth_token`](Config::auth_token) | none (required in HA mode) |
/// | `CACHE_TLS` | [`tls`](Config::tls) | `true` |
/// | `CACHE_TLS_SERVER_CERT` | [`tls_server_cert`](Config::tls_server_cert) | `tls/redhac.cert-chain.pem` |
/// | `CACHE_TLS_SERVER_KEY` | [`tls_server_key`](Config::tls_server_key) | `tls/redhac.key.pem` |
/// | `CACHE_TLS_CLIENT_CERT` | [`tls_client_cert`](Config::tls_client_cert) | none |
/// | `CACHE_TLS_CLIENT_KEY` | [`tls_client_key`](Config::tls_client_key) | none |
/// | `CACHE_TLS_CA_SERVER` | [`tls_ca_server`](Config::tls_ca_server) | none |
/// | `CACHE_TLS_CA_CLIENT` | [`tls_ca_client`](Config::tls_ca_client) | none |
/// | `CACHE_TLS_CLIENT_VALIDATE_DOMAIN` | [`tls_client_validate_domain`](Config::tls_client_validate_domain) | `redhac.local` |
/// | `CACHE_TLS_SNI_OVERWRITE` | [`tls_sni_overwrite`](Config::tls_sni_overwrite) | none |
/// | `CACHE_BUF_SERVER` | [`buf_server`](Config::buf_server) | `128` |
/// | `CACHE_BUF_CLIENT` | [`buf_client`](Config::buf_client) | `64` |
/// | `CACHE_KEEPALIVE_INTERVAL` (s) | [`keepalive_interval`](Config::keepalive_interval) | 5 s |
/// | `CACHE_KEEPALIVE_TIMEOUT` (s) | [`keepalive_timeout`](Config::keepalive_timeout) | 5 s |
/// | `CACHE_ELECTION_TIMEOUT` (s) | [`election_timeout`](Config::election_timeout) | 2 s |
/// | `CACHE_RECONNECT_TIMEOUT_LOWER` (ms) | [`reconnect_timeout_lower`](Config::reconnect_timeout_lower) | 500 ms |
/// | `CACHE_RECONNECT_TIMEOUT_UPPER` (ms) | [`reconnect_timeout_upper`](Config::reconnect_timeout_upper) | 2000 ms |
/// | `CACHE_MAX_VALUE_SIZE` (bytes) | [`max_value_size`](Config::max_value_size) | 8 MiB |
///
/// ```
/// use redhac::Config;
///
/// let config = Config::from_vars([
///     ("HA_MODE", "true"),
///     ("HA_HOSTS", "http://redhac-0.redhac:8001, http://redhac-1.redhac:8001, http://redhac-2.redhac:8001"),
///     ("CACHE_AUTH_TOKEN", "a-long-random-shared-secret"),
/// ])?;
/// assert!(config.ha_mode);
/// assert_eq!(config.ha_hosts.len(), 3);
///
/// let err = Config::from_vars([("HA_MODE", "true")]).unwrap_err();
/// assert!(err.to_string().contains("HA_HOSTS"));
/// # Ok::<(), redhac::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Run as one member of a cluster (`true`) or alone (`false`).
    pub ha_mode: bool,
    /// Every member as `scheme://host:port`, the same list on every member.
    pub ha_hosts: Vec<String>,
    /// The name that finds this member in `ha_hosts`, instead of the OS hostname.
    pub hostname_overwrite: Option<String>,
    /// The secret shared by all members; never sent over the wire.
    pub auth_token: Option<String>,
    /// Use TLS between members.
    pub tls: bool,
    /// Server certificate chain (PEM).
    pub tls_server_cert: PathBuf,
    /// Server private key (PEM).
    pub tls_server_key: PathBuf,
    /// Client certificate chain for mTLS (PEM).
    pub tls_client_cert: Option<PathBuf>,
    /// Client private key for mTLS (PEM).
    pub tls_client_key: Option<PathBuf>,
    /// CA chain that validates the servers' certificates (PEM).
    pub tls_ca_server: Option<PathBuf>,
    /// CA chain that validates the clients' certificates; enables mTLS (PEM).
    pub tls_ca_client: Option<PathBuf>,
    /// The name a client expects in a server's certificate.
    pub tls_client_validate_domain: String,
    /// The SNI a client sends, if not the validated domain.
    pub tls_sni_overwrite: Option<String>,
    /// Buffer of the incoming stream per link (messages).
    pub buf_server: usize,
    /// Buffer of the outgoing stream per link (messages).
    pub buf_client: usize,
    /// Interval of transport keepalive pings.
    pub keepalive_interval: Duration,
    /// How long a keepalive ping may stay unanswered.
    pub keepalive_timeout: Duration,
    /// Base election timeout `T`; elections time out at random in `[T, 2T)`.
    pub election_timeout: Duration,
    /// Lower bound of the random delay before a reconnect.
    pub reconnect_timeout_lower: Duration,
    /// Upper bound of the random delay before a reconnect.
    pub reconnect_timeout_upper: Duration,
    /// Largest encoded value a write may carry in HA mode, in bytes; a larger
    /// one is refused with [`Error::ValueTooLarge`]. At most
    /// [`Config::MAX_VALUE_SIZE_LIMIT`], so that any entry fits in a frame.
    pub max_value_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ha_mode: false,
            ha_hosts: Vec::new(),
            hostname_overwrite: None,
            auth_token: None,
            tls: true,
            tls_server_cert: "tls/redhac.cert-chain.pem".into(),
            tls_server_key: "tls/redhac.key.pem".into(),
            tls_client_cert: None,
            tls_client_key: None,
            tls_ca_server: None,
            tls_ca_client: None,
            tls_client_validate_domain: "redhac.local".into(),
            tls_sni_overwrite: None,
            buf_server: 128,
            buf_client: 64,
            keepalive_interval: Duration::from_secs(5),
            keepalive_timeout: Duration::from_secs(5),
            election_timeout: Duration::from_secs(2),
            reconnect_timeout_lower: Duration::from_millis(500),
            reconnect_timeout_upper: Duration::from_millis(2000),
            max_value_size: 8 << 20,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("ha_mode", &self.ha_mode)
            .field("ha_hosts", &self.ha_hosts)
            .field("hostname_overwrite", &self.hostname_overwrite)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("tls", &self.tls)
            .field("tls_server_cert", &self.tls_server_cert)
            .field("tls_server_key", &self.tls_server_key)
            .field("tls_client_cert", &self.tls_client_cert)
            .field("tls_client_key", &self.tls_client_key)
            .field("tls_ca_server", &self.tls_ca_server)
            .field("tls_ca_client", &self.tls_ca_client)
            .field(
                "tls_client_validate_domain",
                &self.tls_client_validate_domain,
            )
            .field("tls_sni_overwrite", &self.tls_sni_overwrite)
            .field("buf_server", &self.buf_server)
            .field("buf_client", &self.buf_client)
            .field("keepalive_interval", &self.keepalive_interval)
            .field("keepalive_timeout", &self.keepalive_timeout)
            .field("election_timeout", &self.election_timeout)
            .field("reconnect_timeout_lower", &self.reconnect_timeout_lower)
            .field("reconnect_timeout_upper", &self.reconnect_timeout_upper)
            .field("max_value_size", &self.max_value_size)
            .finish()
    }
}

/// The variables as they come from the environment (envy lowercases names).
#[derive(Deserialize)]
struct EnvVars {
    ha_mode: Option<bool>,
    ha_hosts: Option<String>,
    hostname_overwrite: Option<String>,
    cache_auth_token: Option<String>,
    cache_tls: Option<bool>,
    cache_tls_server_cert: Option<PathBuf>,
    cache_tls_server_key: Option<PathBuf>,
    cache_tls_client_cert: Option<PathBuf>,
    cache_tls_client_key: Option<PathBuf>,
    cache_tls_ca_server: Option<PathBuf>,
    cache_tls_ca_client: Option<PathBuf>,
    cache_tls_client_validate_domain: Option<String>,
    cache_tls_sni_overwrite: Option<String>,
    cache_buf_server: Option<usize>,
    cache_buf_client: Option<usize>,
    cache_keepalive_interval: Option<u64>,
    cache_keepalive_timeout: Option<u64>,
    cache_election_timeout: Option<u64>,
    cache_reconnect_timeout_lower: Option<u64>,
    cache_reconnect_timeout_upper: Option<u64>,
    cache_max_value_size: Option<usize>,
}

impl Config {
    /// Shortest `CACHE_AUTH_TOKEN` accepted, in bytes.
    pub const MIN_TOKEN_LEN: usize = 16;

    /// The largest [`Config::max_value_size`] accepted: 15 MiB, leaving room
    /// in a member's 16 MiB frame limit for the key and the framing.
    pub const MAX_VALUE_SIZE_LIMIT: usize = 15 << 20;

    /// Every environment variable [`Config::from_env`] reads.
    pub const ENV_VARS: &'static [&'static str] = &[
        "HA_MODE",
        "HA_HOSTS",
        "HOSTNAME_OVERWRITE",
        "CACHE_AUTH_TOKEN",
        "CACHE_TLS",
        "CACHE_TLS_SERVER_CERT",
        "CACHE_TLS_SERVER_KEY",
        "CACHE_TLS_CLIENT_CERT",
        "CACHE_TLS_CLIENT_KEY",
        "CACHE_TLS_CA_SERVER",
        "CACHE_TLS_CA_CLIENT",
        "CACHE_TLS_CLIENT_VALIDATE_DOMAIN",
        "CACHE_TLS_SNI_OVERWRITE",
        "CACHE_BUF_SERVER",
        "CACHE_BUF_CLIENT",
        "CACHE_KEEPALIVE_INTERVAL",
        "CACHE_KEEPALIVE_TIMEOUT",
        "CACHE_ELECTION_TIMEOUT",
        "CACHE_RECONNECT_TIMEOUT_LOWER",
        "CACHE_RECONNECT_TIMEOUT_UPPER",
        "CACHE_MAX_VALUE_SIZE",
    ];

    /// Reads the process environment, then validates.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable that cannot be parsed or is
    /// inconsistent, and how to fix it.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(std::env::vars())
    }

    /// Reads the given variables as if they were the environment, then
    /// validates. Unknown variables are ignored; a name given twice keeps its
    /// last value.
    ///
    /// # Errors
    /// As [`Config::from_env`].
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: Into<String>,
        V: Into<String>,
    {
        // A name given twice keeps its last value, as in a shell.
        let vars: std::collections::BTreeMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            // An empty variable counts as unset, as manifests often leave them;
            // envy would fail to parse "" as a number or a bool.
            .filter(|(_, v): &(String, String)| !v.is_empty())
            .collect();
        let env: EnvVars = envy::from_iter(vars).map_err(|e| {
            Error::Config(format!(
                "cannot read the environment: {}; fix or unset that variable",
                uppercase_names(&e.to_string())
            ))
        })?;
        let d = Self::default();
        let config = Self {
            ha_mode: env.ha_mode.unwrap_or(d.ha_mode),
            ha_hosts: env.ha_hosts.as_deref().map(split_hosts).unwrap_or_default(),
            hostname_overwrite: env.hostname_overwrite,
            auth_token: env.cache_auth_token,
            tls: env.cache_tls.unwrap_or(d.tls),
            tls_server_cert: env.cache_tls_server_cert.unwrap_or(d.tls_server_cert),
            tls_server_key: env.cache_tls_server_key.unwrap_or(d.tls_server_key),
            tls_client_cert: env.cache_tls_client_cert,
            tls_client_key: env.cache_tls_client_key,
            tls_ca_server: env.cache_tls_ca_server,
            tls_ca_client: env.cache_tls_ca_client,
            tls_client_validate_domain: env
                .cache_tls_client_validate_domain
                .unwrap_or(d.tls_client_validate_domain),
            tls_sni_overwrite: env.cache_tls_sni_overwrite,
            buf_server: env.cache_buf_server.unwrap_or(d.buf_server),
            buf_client: env.cache_buf_client.unwrap_or(d.buf_client),
            keepalive_interval: env
                .cache_keepalive_interval
                .map_or(d.keepalive_interval, Duration::from_secs),
            keepalive_timeout: env
                .cache_keepalive_timeout
                .map_or(d.keepalive_timeout, Duration::from_secs),
            election_timeout: env
                .cache_election_timeout
                .map_or(d.election_timeout, Duration::from_secs),
            reconnect_timeout_lower: env
                .cache_reconnect_timeout_lower
                .map_or(d.reconnect_timeout_lower, Duration::from_millis),
            reconnect_timeout_upper: env
                .cache_reconnect_timeout_upper
                .map_or(d.reconnect_timeout_upper, Duration::from_millis),
            max_value_size: env.cache_max_value_size.unwrap_or(d.max_value_size),
        };
        config.validate()?;
        Ok(config)
    }

    /// The parsed member list.
    ///
    /// # Errors
    /// [`Error::Config`] for an entry that is not `scheme://host:port`.
    pub fn members(&self) -> Result<Vec<HostEntry>> {
        self.ha_hosts
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                HostEntry::parse(raw).map_err(|why| {
                    Error::Config(format!(
                        "HA_HOSTS entry {} {raw:?} is malformed: {why}; write each member as \
                         scheme://host:port, e.g. http://redhac-0.redhac:8001",
                        i + 1
                    ))
                })
            })
            .collect()
    }

    /// Checks that the configuration is complete and consistent. TLS files
    /// are checked when the transport starts.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable and the fix.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Config(msg));
        if self.ha_mode {
            if self.ha_hosts.is_empty() {
                return bad(
                    "HA_MODE is true but HA_HOSTS is empty; set HA_HOSTS to every member as \
                     a comma separated list of scheme://host:port (the same list on each member), \
                     or set HA_MODE=false for a standalone cache"
                        .into(),
                );
            }
            let members = self.members()?;
            for (i, a) in members.iter().enumerate() {
                if let Some(j) = members[..i].iter().position(|b| b.same_member(a)) {
                    return bad(format!(
                        "HA_HOSTS lists {:?} twice (entries {} and {}); list each member once",
                        self.ha_hosts[i],
                        j + 1,
                        i + 1
                    ));
                }
            }
            match &self.auth_token {
                Some(t) if t.trim().len() >= Self::MIN_TOKEN_LEN => {}
                Some(t) if !t.trim().is_empty() => {
                    return bad(format!(
                        "CACHE_AUTH_TOKEN has {} characters; use at least {} random ones, the same on \
                         every member (e.g. `openssl rand -hex 32`)",
                        t.trim().len(),
                        Self::MIN_TOKEN_LEN
                    ));
                }
                _ => {
                    return bad(
                        "HA_MODE is true but CACHE_AUTH_TOKEN is not set; set it to the \
                         same long random secret on every member (e.g. `openssl rand -hex 32`)"
                            .into(),
                    );
                }
            }
        }
        if self.buf_server == 0 {
            return bad("CACHE_BUF_SERVER is 0; use at least 1 (default 128)".into());
        }
        if self.buf_client == 0 {
            return bad("CACHE_BUF_CLIENT is 0; use at least 1 (default 64)".into());
        }
        if self.election_timeout.is_zero() {
            return bad("CACHE_ELECTION_TIMEOUT is 0; use at least 1 second (default 2)".into());
        }
        if self.keepalive_interval.is_zero() || self.keepalive_timeout.is_zero() {
            return bad(
                "CACHE_KEEPALIVE_INTERVAL and CACHE_KEEPALIVE_TIMEOUT must be at least 1 \
                 second (default 5)"
                    .into(),
            );
        }
        if self.reconnect_timeout_lower > self.reconnect_timeout_upper {
            return bad(format!(
                "CACHE_RECONNECT_TIMEOUT_LOWER ({} ms) is above CACHE_RECONNECT_TIMEOUT_UPPER \
                 ({} ms); make LOWER <= UPPER",
                self.reconnect_timeout_lower.as_millis(),
                self.reconnect_timeout_upper.as_millis()
            ));
        }
        if self.max_value_size == 0 || self.max_value_size > Self::MAX_VALUE_SIZE_LIMIT {
            return bad(format!(
                "CACHE_MAX_VALUE_SIZE is {} bytes; use 1 to {} (default {})",
                self.max_value_size,
                Self::MAX_VALUE_SIZE_LIMIT,
                Self::default().max_value_size
            ));
        }
        if self.tls_client_cert.is_some() != self.tls_client_key.is_some() {
            return bad(
                "CACHE_TLS_CLIENT_CERT and CACHE_TLS_CLIENT_KEY go together; set both for \
                 mTLS or neither"
                    .into(),
            );
        }
        Ok(())
    }
}

/// `HA_HOSTS` is comma separated; blanks around entries do not matter.
fn split_hosts(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// envy reports lowercased names; users set them in upper case.
fn uppercase_names(msg: &str) -> String {
    let Some(pos) = msg.rfind("provided by ") else {
        return msg.to_owned();
    };
    let (head, tail) = msg.split_at(pos + "provided by ".len());
    format!("{head}{}", tail.to_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: &str = "http://a:8001, http://b:8001 ,http://[::1]:8003";

    fn ha(extra: &[(&str, &str)]) -> Result<Config> {
        let mut vars = vec![
            ("HA_MODE", "true"),
            ("HA_HOSTS", HOSTS),
            ("CACHE_AUTH_TOKEN", "secret-secret-secret"),
        ];
        vars.extend_from_slice(extra);
        Config::from_vars(vars)
    }

    fn config_err(r: Result<Config>) -> String {
        match r {
            Err(Error::Config(msg)) => msg,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn empty_environment_is_the_standalone_default() {
        let c = Config::from_vars(Vec::<(String, String)>::new()).unwrap();
        assert_eq!(c, Config::default());
        assert!(!c.ha_mode && c.tls);
        assert_eq!(c.election_timeout, Duration::from_secs(2));
        assert_eq!(c.reconnect_timeout_lower, Duration::from_millis(500));
        assert_eq!(c.reconnect_timeout_upper, Duration::from_millis(2000));
        assert_eq!((c.buf_server, c.buf_client), (128, 64));
    }

    #[test]
    fn env_vars_lists_every_field_envy_reads() {
        // A variable set to garbage makes from_vars fail exactly when it is read.
        for var in Config::ENV_VARS {
            let numeric = var.starts_with("CACHE_BUF")
                || var.contains("TIMEOUT")
                || var.contains("INTERVAL")
                || var.contains("SIZE");
            let boolean = *var == "HA_MODE" || *var == "CACHE_TLS";
            if numeric || boolean {
                assert!(
                    Config::from_vars([(*var, "not-a-value")]).is_err(),
                    "{var} is not read"
                );
            }
        }
        assert_eq!(Config::ENV_VARS.len(), 21);
    }

    #[test]
    fn every_variable_is_read() {
        let c = ha(&[
            ("HOSTNAME_OVERWRITE", "b"),
            ("CACHE_TLS", "false"),
            ("CACHE_TLS_SERVER_CERT", "s.pem"),
            ("CACHE_TLS_SERVER_KEY", "s.key"),
            ("CACHE_TLS_CLIENT_CERT", "c.pem"),
            ("CACHE_TLS_CLIENT_KEY", "c.key"),
            ("CACHE_TLS_CA_SERVER", "ca-s.pem"),
            ("CACHE_TLS_CA_CLIENT", "ca-c.pem"),
            ("CACHE_TLS_CLIENT_VALIDATE_DOMAIN", "x.local"),
            ("CACHE_TLS_SNI_OVERWRITE", "sni.local"),
            ("CACHE_BUF_SERVER", "7"),
            ("CACHE_BUF_CLIENT", "8"),
            ("CACHE_KEEPALIVE_INTERVAL", "9"),
            ("CACHE_KEEPALIVE_TIMEOUT", "10"),
            ("CACHE_ELECTION_TIMEOUT", "11"),
            ("CACHE_RECONNECT_TIMEOUT_LOWER", "12"),
            ("CACHE_RECONNECT_TIMEOUT_UPPER", "13"),
            ("CACHE_MAX_VALUE_SIZE", "14"),
        ])
        .unwrap();
        assert_eq!(
            c.ha_hosts,
            ["http://a:8001", "http://b:8001", "http://[::1]:8003"]
        );
        assert_eq!(c.hostname_overwrite.as_deref(), Some("b"));
        assert_eq!(c.auth_token.as_deref(), Some("secret-secret-secret"));
        assert!(!c.tls);
        assert_eq!(c.tls_server_cert, PathBuf::from("s.pem"));
        assert_eq!(c.tls_server_key, PathBuf::from("s.key"));
        assert_eq!(c.tls_client_cert, Some("c.pem".into()));
        assert_eq!(c.tls_client_key, Some("c.key".into()));
        assert_eq!(c.tls_ca_server, Some("ca-s.pem".into()));
        assert_eq!(c.tls_ca_client, Some("ca-c.pem".into()));
        assert_eq!(c.tls_client_validate_domain, "x.local");
        assert_eq!(c.tls_sni_overwrite.as_deref(), Some("sni.local"));
        assert_eq!((c.buf_server, c.buf_client), (7, 8));
        assert_eq!(c.keepalive_interval, Duration::from_secs(9));
        assert_eq!(c.keepalive_timeout, Duration::from_secs(10));
        assert_eq!(c.election_timeout, Duration::from_secs(11));
        assert_eq!(c.reconnect_timeout_lower, Duration::from_millis(12));
        assert_eq!(c.reconnect_timeout_upper, Duration::from_millis(13));
        assert_eq!(c.max_value_size, 14);
    }

    #[test]
    fn ha_without_hosts_names_ha_hosts() {
        let msg = config_err(Config::from_vars([
            ("HA_MODE", "true"),
            ("CACHE_AUTH_TOKEN", "t"),
        ]));
        assert!(
            msg.contains("HA_HOSTS") && msg.contains("scheme://host:port"),
            "{msg}"
        );
    }

    #[test]
    fn ha_without_token_names_the_token() {
        let msg = config_err(Config::from_vars([
            ("HA_MODE", "true"),
            ("HA_HOSTS", HOSTS),
        ]));
        assert!(msg.contains("CACHE_AUTH_TOKEN"), "{msg}");
        let msg = config_err(Config::from_vars([
            ("HA_MODE", "true"),
            ("HA_HOSTS", HOSTS),
            ("CACHE_AUTH_TOKEN", "  "),
        ]));
        assert!(msg.contains("CACHE_AUTH_TOKEN"), "{msg}");
    }

    #[test]
    fn malformed_host_entries_are_named() {
        for bad in [
            "a:8001",
            "http://:8001",
            "http://a",
            "http://a:0",
            "http://a:99999",
            "ftp://a:1",
            "http://a:1/x",
            "http://::1:8001",
        ] {
            let hosts = format!("http://ok:1,{bad}");
            let msg = config_err(ha(&[("HA_HOSTS", hosts.as_str())]));
            assert!(
                msg.contains("HA_HOSTS entry 2") && msg.contains(bad),
                "{bad}: {msg}"
            );
        }
    }

    #[test]
    fn duplicate_members_are_refused() {
        let msg = config_err(ha(&[("HA_HOSTS", "http://a:1, https://a:1")]));
        assert!(msg.contains("twice"), "{msg}");
    }

    #[test]
    fn unparsable_values_name_the_variable() {
        for (var, val) in [
            ("HA_MODE", "yes"),
            ("CACHE_BUF_CLIENT", "-1"),
            ("CACHE_ELECTION_TIMEOUT", "2s"),
        ] {
            let msg = config_err(Config::from_vars([(var, val)]));
            assert!(msg.contains(var), "{var}: {msg}");
        }
    }

    #[test]
    fn inconsistent_values_are_refused() {
        for (vars, needle) in [
            (vec![("CACHE_BUF_SERVER", "0")], "CACHE_BUF_SERVER"),
            (
                vec![("CACHE_ELECTION_TIMEOUT", "0")],
                "CACHE_ELECTION_TIMEOUT",
            ),
            (
                vec![("CACHE_RECONNECT_TIMEOUT_LOWER", "3000")],
                "CACHE_RECONNECT_TIMEOUT_LOWER",
            ),
            (
                vec![("CACHE_TLS_CLIENT_CERT", "c.pem")],
                "CACHE_TLS_CLIENT_KEY",
            ),
            (vec![("CACHE_MAX_VALUE_SIZE", "0")], "CACHE_MAX_VALUE_SIZE"),
            (
                vec![("CACHE_MAX_VALUE_SIZE", "15728641")],
                "CACHE_MAX_VALUE_SIZE",
            ),
        ] {
            let msg = config_err(Config::from_vars(vars));
            assert!(msg.contains(needle), "{needle}: {msg}");
        }
    }

    #[test]
    fn empty_values_count_as_unset_and_the_token_is_redacted() {
        let c = ha(&[("CACHE_BUF_SERVER", ""), ("HOSTNAME_OVERWRITE", "")]).unwrap();
        assert_eq!(c.buf_server, 128);
        assert_eq!(c.hostname_overwrite, None);
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("secret-secret-secret") && dbg.contains("<redacted>"),
            "{dbg}"
        );
    }
}
