//! Configuration: one plain struct, read from the environment with the
//! original redhac variable names and defaults, or built in code. Each
//! variable is declared once, in the table below: it makes the field, its
//! default, its docs, its parser and the redacting `Debug`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::{Error, Result};
use redhac_membership::HostEntry;

/// A secret setting: shown as `<redacted>` by `Debug`, never logged.
///
/// ```
/// let token = redhac::Secret::from("a-long-random-shared-secret");
/// assert_eq!(format!("{token:?}"), "<redacted>");
/// assert_eq!(token.expose(), "a-long-random-shared-secret");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the code that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Declares [`Config`] from one row per variable:
/// `doc; field: Type = default, "VARIABLE", parser, "value", "default shown";`.
macro_rules! config {
    (
        $(#[$meta:meta])*
        pub struct Config {
            $(
                $(#[doc = $doc:literal])+
                $field:ident: $ty:ty = $default:expr,
                    $var:literal, $parse:ident, $format:literal, $shown:literal;
            )+
        }
    ) => {
        $(#[$meta])*
        ///
        /// | variable | field | value | default |
        /// |---|---|---|---|
        $(
            #[doc = concat!(
                "| `", $var, "` | [`", stringify!($field), "`](Config::", stringify!($field),
                ") | ", $format, " | ", $shown, " |"
            )]
        )+
        #[derive(Clone, PartialEq, Eq)]
        pub struct Config {
            $(
                $(#[doc = $doc])+
                #[doc = concat!("\n\nEnvironment: `", $var, "` (", $format, "). Default: ", $shown, ".")]
                pub $field: $ty,
            )+
        }

        impl Default for Config {
            fn default() -> Self {
                Self {
                    $($field: $default,)+
                }
            }
        }

        impl fmt::Debug for Config {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct("Config")
                    $(.field(stringify!($field), &self.$field))+
                    .finish()
            }
        }

        impl Config {
            /// Every environment variable [`Config::from_env`] reads.
            pub const ENV_VARS: &'static [&'static str] = &[$($var),+];

            /// Each field's name with its environment variable.
            pub const FIELDS: &'static [(&'static str, &'static str)] =
                &[$((stringify!($field), $var)),+];

            /// The defaults, with each variable in `vars` parsed over its field.
            fn parse_vars(vars: &BTreeMap<String, String>) -> Result<Self> {
                let mut config = Self::default();
                $(
                    if let Some(raw) = vars.get($var) {
                        config.$field = parse::$parse(raw).map_err(|expected| {
                            Error::Config(format!(
                                "cannot read the environment: {} is not {expected}; fix or unset that variable",
                                $var
                            ))
                        })?;
                    }
                )+
                Ok(config)
            }
        }
    };
}

config! {
    /// The configuration of one redhac member.
    ///
    /// [`Config::default()`] is a standalone cache. [`Config::from_env`] reads
    /// the variables below; every field is public and can be set in code.
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
    pub struct Config {
        /// Run as one member of a cluster (`true`) or alone (`false`).
        ha_mode: bool = false,
            "HA_MODE", flag, "`true` or `false`", "`false`";
        /// Every member as `scheme://host:port`, the same list on every member.
        ha_hosts: Vec<String> = Vec::new(),
            "HA_HOSTS", hosts, "comma separated", "empty";
        /// Learners, as `scheme://host:port`, the same list on every member:
        /// members that receive every change and serve reads like a
        /// follower, and forward writes, but never vote or lead and count in
        /// no majority (`All` writes wait for them too). Lets a cluster grow
        /// read capacity without slowing its elections and commits. Their
        /// ids follow `ha_hosts`'s.
        ha_learners: Vec<String> = Vec::new(),
            "HA_LEARNERS", hosts, "comma separated", "empty";
        /// The dynamic mode, instead of `ha_hosts`: where to find the other
        /// members, as `scheme://host:port` entries whose host is a DNS name
        /// (a Kubernetes headless service: one name for every pod) or an
        /// address, looked up again every `ha_discover_interval`. Members
        /// then come and go without a restart of the others: each start is
        /// a new member with a new random id, the first
        /// `ha_bootstrap_expect` that see each other form the cluster,
        /// later ones join as learners, and the leader keeps `ha_voters`
        /// voters (see the README's "Dynamic membership").
        ha_discover: Vec<String> = Vec::new(),
            "HA_DISCOVER", hosts, "comma separated", "empty (the static mode)";
        /// The dynamic mode: this member's address as its peers reach it
        /// (`ip` or `ip:port`, e.g. the pod IP from the downward API), left
        /// out of discovery and shown to peers. Unset, a member finds its
        /// own address among those discovered by dialling it.
        ha_advertise: Option<String> = None,
            "HA_ADVERTISE", some_text, "`ip` or `ip:port`", "found by dialling";
        /// The dynamic mode: how many members must see each other (and
        /// every member discovery lists) before they form a cluster. Set it
        /// above half the replicas a deployment starts with: two clusters
        /// could form only if twice as many started before the first elected
        /// a leader.
        ha_bootstrap_expect: usize = 3,
            "HA_BOOTSTRAP_EXPECT", count, "members", "`3`";
        /// The dynamic mode: how many voters the leader keeps (3 or 5): it
        /// promotes caught-up learners while fewer answer, and demotes
        /// extra ones. Every other member is a learner.
        ha_voters: usize = 3,
            "HA_VOTERS", count, "members", "`3`";
        /// The dynamic mode: a voter the leader has not heard from this long
        /// is replaced by a caught-up learner (promoted in its place).
        ha_replace_after: Option<Duration> = None,
            "HA_REPLACE_AFTER", some_seconds, "seconds, or `500ms`, `2s`, `1m`", "5 election timeouts";
        /// The dynamic mode: a member the leader has not heard from this
        /// long is removed. Longer than `ha_replace_after`, or a silent
        /// voter is removed before a learner takes its place.
        ha_remove_after: Option<Duration> = None,
            "HA_REMOVE_AFTER", some_seconds, "seconds, or `500ms`, `2s`, `1m`", "30 election timeouts";
        /// The dynamic mode: how long a member shutting down waits at most
        /// for the leader to remove it (it acknowledges and votes
        /// meanwhile). Give Kubernetes a grace period above it.
        ha_leave_timeout: Option<Duration> = None,
            "HA_LEAVE_TIMEOUT", some_seconds, "seconds, or `500ms`, `2s`, `1m`", "10 election timeouts";
        /// The dynamic mode: how often `ha_discover` is looked up again.
        ha_discover_interval: Duration = Duration::from_secs(2),
            "HA_DISCOVER_INTERVAL", seconds, "seconds, or `500ms`, `2s`, `1m`", "2 s";
        /// The name that finds this member in `ha_hosts` or `ha_learners`,
        /// instead of the OS hostname.
        hostname_overwrite: Option<String> = None,
            "HOSTNAME_OVERWRITE", some_text, "text", "the OS hostname";
        /// Where to accept members' links, instead of every interface at the
        /// port of this member's entry: `ip:port` (`[v6]:port`), e.g. the
        /// pod IP from the downward API, so the cluster port is not open on
        /// other interfaces.
        listen_addr: Option<std::net::SocketAddr> = None,
            "CACHE_LISTEN_ADDR", some_addr, "`ip:port`", "every interface, the entry's port";
        /// The secret shared by all members; never sent over the wire. Or
        /// `CACHE_AUTH_TOKEN_FILE`: a file holding it (as Kubernetes mounts a
        /// secret; a trailing newline is ignored).
        auth_token: Option<Secret> = None,
            "CACHE_AUTH_TOKEN", secret, "text", "none (required in HA mode)";
        /// While the token is rotated, the token being replaced: this member
        /// also proves itself with it, and accepts a peer that proves either
        /// token. Set it for the first rolling restart of a rotation, unset it
        /// for the second (see the README). Or `CACHE_AUTH_TOKEN_PREVIOUS_FILE`.
        auth_token_previous: Option<Secret> = None,
            "CACHE_AUTH_TOKEN_PREVIOUS", secret, "text", "none";
        /// Use TLS between members.
        tls: bool = true,
            "CACHE_TLS", flag, "`true` or `false`", "`true`";
        /// Server certificate chain (PEM).
        tls_server_cert: PathBuf = "tls/redhac.cert-chain.pem".into(),
            "CACHE_TLS_SERVER_CERT", path, "path", "`tls/redhac.cert-chain.pem`";
        /// Server private key (PEM).
        tls_server_key: PathBuf = "tls/redhac.key.pem".into(),
            "CACHE_TLS_SERVER_KEY", path, "path", "`tls/redhac.key.pem`";
        /// Client certificate chain for mTLS (PEM).
        tls_client_cert: Option<PathBuf> = None,
            "CACHE_TLS_CLIENT_CERT", some_path, "path", "none";
        /// Client private key for mTLS (PEM).
        tls_client_key: Option<PathBuf> = None,
            "CACHE_TLS_CLIENT_KEY", some_path, "path", "none";
        /// CA chain that validates the servers' certificates (PEM).
        tls_ca_server: Option<PathBuf> = None,
            "CACHE_TLS_CA_SERVER", some_path, "path", "none";
        /// CA chain that validates the clients' certificates; enables mTLS (PEM).
        tls_ca_client: Option<PathBuf> = None,
            "CACHE_TLS_CA_CLIENT", some_path, "path", "none";
        /// The name a client expects in a server's certificate.
        tls_client_validate_domain: String = "redhac.local".into(),
            "CACHE_TLS_CLIENT_VALIDATE_DOMAIN", text, "text", "`redhac.local`";
        /// The SNI a client sends, if not the validated domain.
        tls_sni_overwrite: Option<String> = None,
            "CACHE_TLS_SNI_OVERWRITE", some_text, "text", "none";
        /// Messages queued to send on each link a peer dialled (this member
        /// serves that stream); also the runtime's queue of link events.
        buf_server: usize = 128,
            "CACHE_BUF_SERVER", count, "messages", "`128`";
        /// Messages queued to send on each link this member dialled; also
        /// the application's queue of requests to the runtime (at least 64).
        buf_client: usize = 64,
            "CACHE_BUF_CLIENT", count, "messages", "`64`";
        /// Interval of transport keepalive pings.
        keepalive_interval: Duration = Duration::from_secs(5),
            "CACHE_KEEPALIVE_INTERVAL", seconds, "seconds, or `500ms`, `2s`, `1m`", "5 s";
        /// How long a keepalive ping may stay unanswered.
        keepalive_timeout: Duration = Duration::from_secs(5),
            "CACHE_KEEPALIVE_TIMEOUT", seconds, "seconds, or `500ms`, `2s`, `1m`", "5 s";
        /// Base election timeout `T`; elections time out at random in `[T, 2T)`.
        election_timeout: Duration = Duration::from_secs(2),
            "CACHE_ELECTION_TIMEOUT", seconds, "seconds, or `500ms`, `2s`, `1m`", "2 s";
        /// Lower bound of the random delay before a reconnect. A member dials
        /// a peer again 5 ms after losing it, doubling the wait with each
        /// failed dial; this random delay caps the wait, as does half the
        /// election timeout (a healed partition relinks within it), and it
        /// is the wait after a refusal (a wrong token or member list does not
        /// mend itself).
        reconnect_timeout_lower: Duration = Duration::from_millis(500),
            "CACHE_RECONNECT_TIMEOUT_LOWER", millis, "milliseconds, or `500ms`, `2s`", "500 ms";
        /// Upper bound of the random delay before a reconnect.
        reconnect_timeout_upper: Duration = Duration::from_millis(2000),
            "CACHE_RECONNECT_TIMEOUT_UPPER", millis, "milliseconds, or `500ms`, `2s`", "2000 ms";
        /// Largest encoded value a write may carry in HA mode, in bytes; a larger
        /// one is refused with [`Error::ValueTooLarge`]. At most
        /// [`Config::MAX_VALUE_SIZE_LIMIT`], so that any entry fits in a frame.
        max_value_size: usize = 8 << 20,
            "CACHE_MAX_VALUE_SIZE", count, "bytes", "8 MiB";
    }
}

/// Parsers of variables' values: each returns the field's value, or what
/// it expected.
/// The secrets that may instead be given as a file (`NAME_FILE`, as
/// Kubernetes mounts secrets).
const SECRET_FILES: [&str; 2] = ["CACHE_AUTH_TOKEN", "CACHE_AUTH_TOKEN_PREVIOUS"];

/// Reads each secret given as `NAME_FILE` into `NAME` (without a trailing
/// newline).
fn read_secret_files(vars: &mut BTreeMap<String, String>) -> Result<()> {
    for name in SECRET_FILES {
        let file_var = format!("{name}_FILE");
        let Some(path) = vars.get(&file_var).cloned() else {
            continue;
        };
        if vars.contains_key(name) {
            return Err(Error::Config(format!(
                "both {name} and {file_var} are set; keep one"
            )));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::Config(format!("{file_var}: cannot read {path}: {e}")))?;
        let secret = text.trim_end_matches(['\n', '\r']);
        if !secret.is_empty() {
            vars.insert(name.to_owned(), secret.to_owned());
        }
    }
    Ok(())
}

mod parse {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::Secret;

    type Parsed<T> = Result<T, &'static str>;

    pub(super) fn flag(raw: &str) -> Parsed<bool> {
        raw.parse().map_err(|_| "`true` or `false`")
    }

    pub(super) fn count(raw: &str) -> Parsed<usize> {
        raw.parse().map_err(|_| "a whole number")
    }

    /// A whole number in `unit`, or a number with its own unit: `500ms`,
    /// `2s`, `1m` (whole numbers; `ms`, `s`, `m`, `h`).
    fn duration(raw: &str, unit: Duration) -> Option<Duration> {
        let raw = raw.trim();
        let digits = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
        let (n, suffix) = raw.split_at(digits);
        let n: u32 = n.parse().ok()?;
        let unit = match suffix.trim() {
            "" => unit,
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return None,
        };
        unit.checked_mul(n)
    }

    pub(super) fn seconds(raw: &str) -> Parsed<Duration> {
        duration(raw, Duration::from_secs(1))
            .ok_or("a whole number of seconds, or a duration like `500ms` or `2s`")
    }

    pub(super) fn some_seconds(raw: &str) -> Parsed<Option<Duration>> {
        seconds(raw).map(Some)
    }

    pub(super) fn millis(raw: &str) -> Parsed<Duration> {
        duration(raw, Duration::from_millis(1))
            .ok_or("a whole number of milliseconds, or a duration like `500ms` or `2s`")
    }

    pub(super) fn text(raw: &str) -> Parsed<String> {
        Ok(raw.to_owned())
    }

    pub(super) fn some_text(raw: &str) -> Parsed<Option<String>> {
        Ok(Some(raw.to_owned()))
    }

    pub(super) fn secret(raw: &str) -> Parsed<Option<Secret>> {
        Ok(Some(Secret::from(raw)))
    }

    pub(super) fn path(raw: &str) -> Parsed<PathBuf> {
        Ok(raw.into())
    }

    pub(super) fn some_path(raw: &str) -> Parsed<Option<PathBuf>> {
        Ok(Some(raw.into()))
    }

    pub(super) fn some_addr(raw: &str) -> Parsed<Option<std::net::SocketAddr>> {
        raw.trim()
            .parse()
            .map(Some)
            .map_err(|_| "an address like `10.0.0.7:8001` or `[::1]:8001`")
    }

    /// `HA_HOSTS` is comma separated; blanks around entries do not matter.
    pub(super) fn hosts(raw: &str) -> Parsed<Vec<String>> {
        Ok(raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect())
    }
}

/// A [`Config`] nests in the application's own configuration (a TOML, YAML
/// or JSON file read with serde, figment, config-rs...). Keys are the field
/// names (`ha_hosts`) or the variables (`HA_HOSTS`), plus `auth_token_file`
/// and `auth_token_previous_file` (or their variables) for secrets in
/// files; values are what the variable takes (`"2s"` or `2` for the election
/// timeout), numbers and booleans as such, and a list for `ha_hosts` and
/// `ha_learners`. Unknown keys are refused; the result is validated as
/// [`Config::from_vars`] does.
///
/// ```
/// let config: redhac::Config = serde_json::from_str(r#"{
///     "ha_mode": true,
///     "ha_hosts": ["http://redhac-0.redhac:8001", "http://redhac-1.redhac:8001", "http://redhac-2.redhac:8001"],
///     "auth_token": "a-long-random-shared-secret",
///     "election_timeout": "1500ms",
///     "buf_client": 128
/// }"#)?;
/// assert_eq!(config.election_timeout, std::time::Duration::from_millis(1500));
/// assert!(serde_json::from_str::<redhac::Config>(r#"{"ha_hots": []}"#).is_err());
/// # Ok::<(), serde_json::Error>(())
/// ```
impl<'de> serde::Deserialize<'de> for Config {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Value {
            Flag(bool),
            Number(u64),
            // Refused by the variable's parser, which names it.
            Signed(i64),
            Float(f64),
            Text(String),
            List(Vec<String>),
        }
        let map = BTreeMap::<String, Value>::deserialize(d)?;
        let mut vars = BTreeMap::new();
        for (key, value) in map {
            let file = |name: &str| {
                SECRET_FILES.iter().find_map(|var| {
                    let field = Self::FIELDS.iter().find(|(_, v)| v == var)?.0;
                    (name == format!("{var}_FILE") || name == format!("{field}_file"))
                        .then(|| format!("{var}_FILE"))
                })
            };
            let var = Self::FIELDS
                .iter()
                .find(|(field, var)| *field == key || *var == key)
                .map(|(_, var)| (*var).to_owned())
                .or_else(|| file(&key))
                .ok_or_else(|| {
                    D::Error::custom(format!(
                        "unknown redhac setting {key:?}; the settings are the fields of \
                         redhac::Config (ha_mode, ha_hosts, ...) or their variables"
                    ))
                })?;
            let text = match value {
                Value::Flag(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                Value::Signed(n) => n.to_string(),
                Value::Float(n) => n.to_string(),
                Value::Text(t) => t,
                Value::List(items) => items.join(","),
            };
            vars.insert(var, text);
        }
        Self::from_vars(vars).map_err(D::Error::custom)
    }
}

impl Config {
    /// Shortest `CACHE_AUTH_TOKEN` accepted, in bytes.
    pub const MIN_TOKEN_LEN: usize = 16;

    /// The largest [`Config::max_value_size`] accepted: 15 MiB, leaving room
    /// in a member's 16 MiB frame limit for the key and the framing.
    pub const MAX_VALUE_SIZE_LIMIT: usize = 15 << 20;

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
    /// last value (as in a shell); an empty one counts as unset, as
    /// manifests often leave them.
    ///
    /// # Errors
    /// As [`Config::from_env`].
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut vars: BTreeMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(_, v): &(String, String)| !v.is_empty())
            .collect();
        read_secret_files(&mut vars)?;
        let config = Self::parse_vars(&vars)?;
        config.validate()?;
        Ok(config)
    }

    /// The parsed member list: `ha_hosts` (the voters), then `ha_learners`.
    ///
    /// # Errors
    /// [`Error::Config`] for an entry that is not `scheme://host:port`.
    pub fn members(&self) -> Result<Vec<HostEntry>> {
        let parse = |var: &str, list: &[String]| -> Result<Vec<HostEntry>> {
            list.iter()
                .enumerate()
                .map(|(i, raw)| {
                    HostEntry::parse(raw).map_err(|why| {
                        Error::Config(format!(
                            "{var} entry {} {raw:?} is malformed: {why}; write each member as \
                             scheme://host:port, e.g. http://redhac-0.redhac:8001",
                            i + 1
                        ))
                    })
                })
                .collect()
        };
        let mut members = parse("HA_HOSTS", &self.ha_hosts)?;
        members.extend(parse("HA_LEARNERS", &self.ha_learners)?);
        Ok(members)
    }

    /// Who votes: the members of `ha_hosts`; the learners of `ha_learners`
    /// follow them in [`Config::members`].
    pub fn membership(&self) -> redhac_membership::Membership {
        let voters = self.ha_hosts.len();
        let learners = voters.max(1)..voters.max(1) + self.ha_learners.len();
        learners.fold(
            redhac_membership::Membership::voters_only(voters),
            |m, id| m.with_learner(id as u32),
        )
    }

    /// Whether members are discovered (`HA_DISCOVER`, the dynamic mode)
    /// rather than listed (`HA_HOSTS`).
    pub fn dynamic(&self) -> bool {
        !self.ha_discover.is_empty()
    }

    /// The parsed `HA_DISCOVER` entries.
    ///
    /// # Errors
    /// [`Error::Config`] for an entry that is not `scheme://host:port`.
    pub fn discover(&self) -> Result<Vec<HostEntry>> {
        self.ha_discover
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                HostEntry::parse(raw).map_err(|why| {
                    Error::Config(format!(
                        "HA_DISCOVER entry {} {raw:?} is malformed: {why}; write each as \
                         scheme://host:port, e.g. http://redhac.my-namespace.svc.cluster.local:8001",
                        i + 1
                    ))
                })
            })
            .collect()
    }

    /// The parsed `HA_ADVERTISE`: an address, and a port when it names one.
    ///
    /// # Errors
    /// [`Error::Config`] for something else.
    pub fn advertise(&self) -> Result<Option<(std::net::IpAddr, Option<u16>)>> {
        let Some(raw) = self.ha_advertise.as_deref().map(str::trim) else {
            return Ok(None);
        };
        if let Ok(ip) = raw.trim_start_matches('[').trim_end_matches(']').parse() {
            return Ok(Some((ip, None)));
        }
        match raw.parse::<std::net::SocketAddr>() {
            Ok(addr) => Ok(Some((addr.ip(), Some(addr.port())))),
            Err(_) => Err(Error::Config(format!(
                "HA_ADVERTISE {raw:?} is not an address; give this member's IP as its peers \
                 reach it, e.g. 10.0.0.7 or 10.0.0.7:8001 (in Kubernetes, the pod IP from \
                 the downward API)"
            ))),
        }
    }

    /// The dynamic mode's autopilot: `HA_VOTERS`, and the times set, else
    /// derived from the election timeout
    /// ([`Autopilot::new`](redhac_membership::Autopilot::new)).
    pub fn autopilot(&self) -> redhac_membership::Autopilot {
        self.autopilot_with(self.election_timeout)
    }

    /// As [`Config::autopilot`], the times not set derived from `election_timeout`
    /// (the core's, which [`crate::Builder::timing`] may set).
    pub(crate) fn autopilot_with(
        &self,
        election_timeout: Duration,
    ) -> redhac_membership::Autopilot {
        let mut pilot = redhac_membership::Autopilot::new(self.ha_voters, election_timeout);
        pilot.replace_after = self.ha_replace_after.unwrap_or(pilot.replace_after);
        pilot.remove_after = self.ha_remove_after.unwrap_or(pilot.remove_after);
        pilot.leave_timeout = self.ha_leave_timeout.unwrap_or(pilot.leave_timeout);
        pilot
    }

    /// The dynamic mode's variables, checked.
    fn validate_dynamic(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Config(msg));
        if !self.ha_hosts.is_empty() || !self.ha_learners.is_empty() {
            return bad(
                "both HA_DISCOVER and HA_HOSTS (or HA_LEARNERS) are set; keep HA_HOSTS for a \
                 fixed list of members (the static mode) or HA_DISCOVER for members that come \
                 and go (the dynamic mode)"
                    .into(),
            );
        }
        self.discover()?;
        self.advertise()?;
        if !(1..=9).contains(&self.ha_voters) || self.ha_voters.is_multiple_of(2) {
            return bad(format!(
                "HA_VOTERS is {}; use 3 or 5 (an odd number from 1 to 9: an even one adds no \
                 fault tolerance)",
                self.ha_voters
            ));
        }
        if self.ha_bootstrap_expect == 0 {
            return bad(
                "HA_BOOTSTRAP_EXPECT is 0; use the number of members that form the cluster \
                 (above half the replicas a deployment starts with; default 3)"
                    .into(),
            );
        }
        let pilot = self.autopilot();
        if pilot.remove_after <= pilot.replace_after {
            return bad(format!(
                "HA_REMOVE_AFTER ({:?}) is not above HA_REPLACE_AFTER ({:?}): a silent voter \
                 would be removed before a learner takes its place; make it longer",
                pilot.remove_after, pilot.replace_after
            ));
        }
        if [pilot.replace_after, pilot.remove_after, pilot.leave_timeout]
            .iter()
            .any(Duration::is_zero)
        {
            return bad(
                "HA_REPLACE_AFTER, HA_REMOVE_AFTER and HA_LEAVE_TIMEOUT must be positive \
                 durations such as 10s"
                    .into(),
            );
        }
        if self.ha_discover_interval.is_zero() {
            return bad(
                "HA_DISCOVER_INTERVAL is 0; use a positive duration such as 2s (default 2 s)"
                    .into(),
            );
        }
        Ok(())
    }

    /// What members compare at connect: the same lists, in order. Without
    /// learners it is `HA_HOSTS` alone, as in earlier releases.
    pub(crate) fn member_lists(&self) -> Vec<String> {
        if self.dynamic() {
            // Static and dynamic members refuse each other (no host entry
            // reads like this), and so do releases before the dynamic mode.
            return vec!["dynamic:".to_owned()];
        }
        let mut lists = self.ha_hosts.clone();
        if !self.ha_learners.is_empty() {
            // No host entry can read like this (it has no scheme).
            lists.push("learners:".to_owned());
            lists.extend(self.ha_learners.iter().cloned());
        }
        lists
    }

    /// Checks that the configuration is complete and consistent. TLS files
    /// are checked when the transport starts.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable and the fix.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Config(msg));
        if self.ha_mode {
            if self.dynamic() {
                self.validate_dynamic()?;
            } else if self.ha_hosts.is_empty() {
                return bad(
                    "HA_MODE is true but HA_HOSTS is empty; set HA_HOSTS to every member as \
                     a comma separated list of scheme://host:port (the same list on each member), \
                     or HA_DISCOVER to a name that finds them (the dynamic mode), \
                     or set HA_MODE=false for a standalone cache"
                        .into(),
                );
            }
            let members = self.members()?;
            let raw: Vec<&String> = self.ha_hosts.iter().chain(&self.ha_learners).collect();
            let voters = self.ha_hosts.len();
            let name = |i: usize| {
                if i < voters {
                    format!("HA_HOSTS entry {}", i + 1)
                } else {
                    format!("HA_LEARNERS entry {}", i - voters + 1)
                }
            };
            for (i, a) in members.iter().enumerate() {
                if let Some(j) = members[..i].iter().position(|b| b.same_member(a)) {
                    return bad(format!(
                        "{:?} is listed twice ({} and {}); list each member once, as a voter \
                         in HA_HOSTS or as a learner in HA_LEARNERS",
                        raw[i],
                        name(j),
                        name(i)
                    ));
                }
            }
            match self.auth_token.as_ref().map(Secret::expose) {
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
            if let Some(t) = self.auth_token_previous.as_ref().map(Secret::expose)
                && t.trim().len() < Self::MIN_TOKEN_LEN
            {
                return bad(format!(
                    "CACHE_AUTH_TOKEN_PREVIOUS has {} characters; set it to the token being \
                     replaced (at least {}), or unset it",
                    t.trim().len(),
                    Self::MIN_TOKEN_LEN
                ));
            }
        }
        if self.buf_server == 0 {
            return bad("CACHE_BUF_SERVER is 0; use at least 1 (default 128)".into());
        }
        if self.buf_client == 0 {
            return bad("CACHE_BUF_CLIENT is 0; use at least 1 (default 64)".into());
        }
        if self.election_timeout.is_zero() {
            return bad(
                "CACHE_ELECTION_TIMEOUT is 0; use a positive duration such as 2s or 1500ms \
                 (default 2 s)"
                    .into(),
            );
        }
        if self.keepalive_interval.is_zero() || self.keepalive_timeout.is_zero() {
            return bad(
                "CACHE_KEEPALIVE_INTERVAL and CACHE_KEEPALIVE_TIMEOUT must be positive \
                 durations such as 5s or 500ms (default 5 s)"
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
    fn env_vars_lists_every_variable_read() {
        // A variable set to garbage makes from_vars fail exactly when it is read.
        for var in Config::ENV_VARS {
            let numeric = var.starts_with("CACHE_BUF")
                || var.contains("TIMEOUT")
                || var.contains("INTERVAL")
                || var.contains("SIZE");
            let numeric = numeric
                || var.ends_with("_AFTER")
                || *var == "HA_VOTERS"
                || *var == "HA_BOOTSTRAP_EXPECT";
            let boolean = *var == "HA_MODE" || *var == "CACHE_TLS";
            if numeric || boolean {
                assert!(
                    Config::from_vars([(*var, "not-a-value")]).is_err(),
                    "{var} is not read"
                );
            }
        }
        assert_eq!(Config::ENV_VARS.len(), 32);
    }

    #[test]
    fn a_config_nests_in_an_application_config() {
        #[derive(serde::Deserialize)]
        struct App {
            redhac: Config,
        }
        let dir = std::env::temp_dir().join(format!("redhac-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "secret-from-a-file-0123\n").unwrap();
        let yaml = format!(
            "redhac:\n  HA_MODE: true\n  ha_hosts:\n    - http://a:1\n    - http://b:1\n    - http://c:1\n  \
             auth_token_file: {}\n  CACHE_ELECTION_TIMEOUT: 3\n  keepalive_interval: 500ms\n  tls: false\n",
            token.display()
        );
        let app: App = serde_yaml_ng::from_str(&yaml).unwrap();
        let c = app.redhac;
        assert!(c.ha_mode && !c.tls);
        assert_eq!(c.ha_hosts, ["http://a:1", "http://b:1", "http://c:1"]);
        assert_eq!(
            c.auth_token.as_ref().map(Secret::expose),
            Some("secret-from-a-file-0123")
        );
        assert_eq!(c.election_timeout, Duration::from_secs(3));
        assert_eq!(c.keepalive_interval, Duration::from_millis(500));
        std::fs::remove_dir_all(&dir).unwrap();

        // Unknown keys, bad values and an invalid whole are refused, named.
        let e = serde_yaml_ng::from_str::<Config>("ha_hots: []").unwrap_err();
        assert!(e.to_string().contains("ha_hots"), "{e}");
        let e = serde_yaml_ng::from_str::<Config>("buf_client: -1").unwrap_err();
        assert!(e.to_string().contains("CACHE_BUF_CLIENT"), "{e}");
        let e = serde_yaml_ng::from_str::<Config>("ha_mode: true").unwrap_err();
        assert!(e.to_string().contains("HA_HOSTS"), "{e}");
        // Every field can be given by name.
        for (field, var) in Config::FIELDS {
            assert!(Config::ENV_VARS.contains(var), "{field}");
        }
    }

    #[test]
    fn the_dynamic_mode_takes_a_discovery_name_and_refuses_a_mixed_or_odd_setup() {
        let dynamic = |extra: &[(&str, &str)]| {
            let mut vars = vec![
                ("HA_MODE", "true"),
                ("HA_DISCOVER", "http://redhac.ns.svc.cluster.local:8001"),
                ("CACHE_AUTH_TOKEN", "secret-secret-secret"),
            ];
            vars.extend_from_slice(extra);
            Config::from_vars(vars)
        };
        let c = dynamic(&[("HA_ADVERTISE", "10.0.0.7")]).unwrap();
        assert!(c.dynamic());
        assert_eq!((c.ha_voters, c.ha_bootstrap_expect), (3, 3));
        assert_eq!(c.discover().unwrap()[0].port, 8001);
        assert_eq!(
            c.advertise().unwrap(),
            Some(("10.0.0.7".parse().unwrap(), None))
        );
        let c = dynamic(&[("HA_ADVERTISE", "[fd00::7]:9000")]).unwrap();
        assert_eq!(
            c.advertise().unwrap(),
            Some(("fd00::7".parse().unwrap(), Some(9000)))
        );
        // Static and dynamic member lists differ, so such members refuse
        // each other.
        assert_ne!(c.member_lists(), ha(&[]).unwrap().member_lists());

        let e = config_err(dynamic(&[("HA_HOSTS", HOSTS)]));
        assert!(e.contains("HA_DISCOVER") && e.contains("HA_HOSTS"), "{e}");
        let e = config_err(dynamic(&[("HA_VOTERS", "4")]));
        assert!(e.contains("HA_VOTERS is 4"), "{e}");
        let c = dynamic(&[("HA_REPLACE_AFTER", "3s"), ("HA_REMOVE_AFTER", "1m")]).unwrap();
        let pilot = c.autopilot();
        assert_eq!(pilot.replace_after, Duration::from_secs(3));
        assert_eq!(pilot.remove_after, Duration::from_secs(60));
        assert_eq!(pilot.leave_timeout, c.election_timeout * 10);
        let e = config_err(dynamic(&[("HA_REMOVE_AFTER", "4s")]));
        assert!(e.contains("HA_REMOVE_AFTER"), "{e}");
        let e = config_err(dynamic(&[("HA_LEAVE_TIMEOUT", "0")]));
        assert!(e.contains("HA_LEAVE_TIMEOUT"), "{e}");
        let e = config_err(dynamic(&[("HA_BOOTSTRAP_EXPECT", "0")]));
        assert!(e.contains("HA_BOOTSTRAP_EXPECT"), "{e}");
        let e = config_err(dynamic(&[("HA_ADVERTISE", "pod-7")]));
        assert!(e.contains("HA_ADVERTISE"), "{e}");
        let e = config_err(dynamic(&[("HA_DISCOVER", "redhac:8001")]));
        assert!(e.contains("HA_DISCOVER entry 1"), "{e}");
        let e = config_err(dynamic(&[("CACHE_AUTH_TOKEN", "short")]));
        assert!(e.contains("CACHE_AUTH_TOKEN"), "{e}");
    }

    #[test]
    fn the_listen_address_is_an_ip_and_port() {
        let c = ha(&[("CACHE_LISTEN_ADDR", " [::1]:8001 ")]).unwrap();
        assert_eq!(c.listen_addr, Some("[::1]:8001".parse().unwrap()));
        for bad in ["redhac-0:8001", "10.0.0.1", "10.0.0.1:99999"] {
            let msg = config_err(ha(&[("CACHE_LISTEN_ADDR", bad)]));
            assert!(msg.contains("CACHE_LISTEN_ADDR"), "{bad}: {msg}");
        }
    }

    #[test]
    fn durations_take_their_unit_or_their_own() {
        let c = ha(&[
            ("CACHE_ELECTION_TIMEOUT", "1500ms"),
            ("CACHE_RECONNECT_TIMEOUT_LOWER", "1s"),
            ("CACHE_RECONNECT_TIMEOUT_UPPER", "3000"),
            ("CACHE_KEEPALIVE_INTERVAL", "7"),
            ("CACHE_KEEPALIVE_TIMEOUT", "1m"),
        ])
        .unwrap();
        assert_eq!(c.election_timeout, Duration::from_millis(1500));
        assert_eq!(c.reconnect_timeout_lower, Duration::from_secs(1));
        assert_eq!(c.reconnect_timeout_upper, Duration::from_secs(3));
        assert_eq!(c.keepalive_interval, Duration::from_secs(7));
        assert_eq!(c.keepalive_timeout, Duration::from_secs(60));
        for bad in ["2.5s", "-1", "5 parsecs", "ms"] {
            let e = config_err(ha(&[("CACHE_ELECTION_TIMEOUT", bad)]));
            assert!(
                e.contains("CACHE_ELECTION_TIMEOUT") && e.contains("`500ms`"),
                "{e}"
            );
        }
    }

    #[test]
    fn the_token_may_come_from_a_file_as_kubernetes_mounts_it() {
        let dir = std::env::temp_dir().join(format!("redhac-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "from-a-file-0123456789\n").unwrap();
        let path = file.to_str().unwrap();
        let c = Config::from_vars([
            ("HA_MODE", "true"),
            ("HA_HOSTS", HOSTS),
            ("CACHE_AUTH_TOKEN_FILE", path),
        ])
        .unwrap();
        let token = c.auth_token.as_ref().map(Secret::expose);
        assert_eq!(token, Some("from-a-file-0123456789"));
        let both = config_err(ha(&[("CACHE_AUTH_TOKEN_FILE", path)]));
        assert!(
            both.contains("both CACHE_AUTH_TOKEN and CACHE_AUTH_TOKEN_FILE"),
            "{both}"
        );
        let missing = dir.join("missing");
        let gone = config_err(ha(&[(
            "CACHE_AUTH_TOKEN_PREVIOUS_FILE",
            missing.to_str().unwrap(),
        )]));
        assert!(
            gone.starts_with("CACHE_AUTH_TOKEN_PREVIOUS_FILE: cannot read"),
            "{gone}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
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
            ("CACHE_AUTH_TOKEN_PREVIOUS", "previous-previous-previous"),
        ])
        .unwrap();
        assert_eq!(
            c.ha_hosts,
            ["http://a:8001", "http://b:8001", "http://[::1]:8003"]
        );
        assert_eq!(c.hostname_overwrite.as_deref(), Some("b"));
        assert_eq!(c.auth_token, Some(Secret::from("secret-secret-secret")));
        assert_eq!(
            c.auth_token_previous,
            Some(Secret::from("previous-previous-previous"))
        );
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
    fn learners_follow_the_voters_and_change_the_fingerprint_only_when_set() {
        let c = ha(&[("HA_LEARNERS", "http://l:1, http://m:1")]).unwrap();
        let members = c.members().unwrap();
        assert_eq!(members.len(), c.ha_hosts.len() + 2);
        assert_eq!(members[c.ha_hosts.len()].host, "l");
        let m = c.membership();
        assert_eq!(m.voter_count(), c.ha_hosts.len());
        assert_eq!(
            m.learners().collect::<Vec<_>>(),
            [c.ha_hosts.len() as u32, c.ha_hosts.len() as u32 + 1]
        );
        assert_ne!(c.member_lists(), c.ha_hosts);
        // Without learners, members compare `HA_HOSTS` alone, as before.
        let plain = ha(&[]).unwrap();
        assert_eq!(plain.member_lists(), plain.ha_hosts);

        let msg = config_err(ha(&[("HA_LEARNERS", "http://l:1, l:2")]));
        assert!(msg.contains("HA_LEARNERS entry 2"), "{msg}");
        let voter = c.ha_hosts[1].clone();
        let msg = config_err(ha(&[("HA_LEARNERS", voter.as_str())]));
        assert!(
            msg.contains("twice")
                && msg.contains("HA_HOSTS entry 2")
                && msg.contains("HA_LEARNERS entry 1"),
            "{msg}"
        );
    }

    #[test]
    fn unparsable_values_name_the_variable() {
        for (var, val) in [
            ("HA_MODE", "yes"),
            ("CACHE_BUF_CLIENT", "-1"),
            ("CACHE_ELECTION_TIMEOUT", "2.5s"),
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
                vec![("CACHE_AUTH_TOKEN_PREVIOUS", "short")],
                "CACHE_AUTH_TOKEN_PREVIOUS",
            ),
            (
                vec![("CACHE_MAX_VALUE_SIZE", "15728641")],
                "CACHE_MAX_VALUE_SIZE",
            ),
        ] {
            let msg = config_err(ha(&vars));
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
