//! The member list (`HA_HOSTS`) and "who am I".

use std::fmt;

/// One member of `HA_HOSTS`: `scheme://host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostEntry {
    /// `http` or `https`.
    pub scheme: String,
    /// A hostname, an IPv4 address, or an IPv6 address without its brackets.
    pub host: String,
    /// The port the member listens on.
    pub port: u16,
}

impl HostEntry {
    /// Parses `scheme://host:port`; IPv6 addresses go in brackets.
    ///
    /// # Errors
    /// A short reason, for the caller to put in context.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let raw = raw.trim();
        let (scheme, rest) = raw.split_once("://").ok_or("the scheme is missing")?;
        if scheme != "http" && scheme != "https" {
            return Err("the scheme must be http or https");
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or("an IPv6 address lacks its ']'")?;
            let port = after.strip_prefix(':').ok_or("the :port is missing")?;
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return Err("the address in brackets is not IPv6");
            }
            (addr, port)
        } else {
            let (host, port) = rest.rsplit_once(':').ok_or("the :port is missing")?;
            if host.contains(':') {
                return Err("an IPv6 address must be written in brackets, as [::1]");
            }
            (host, port)
        };
        if host.is_empty() {
            return Err("the host is empty");
        }
        if host.contains(['/', '@', '?', '#', ' ']) {
            return Err("the host holds a character a hostname cannot");
        }
        let port = match port.parse::<u16>() {
            Ok(0) => return Err("port 0 is not a listening port"),
            Ok(p) => p,
            Err(_) => return Err("the port is not a number from 1 to 65535"),
        };
        Ok(Self {
            scheme: scheme.to_owned(),
            host: host.to_owned(),
            port,
        })
    }

    /// Two entries name the same member when host and port agree.
    pub fn same_member(&self, other: &Self) -> bool {
        self.host == other.host && self.port == other.port
    }
}

/// Finds "me" in the member list: the entry whose host equals `name`, or,
/// when `name` carries a port (`host:port`, `[v6]:port`), whose host and port
/// equal it. Compared exactly, never as a substring.
///
/// # Errors
/// A message naming the entries and the name sought, when no entry or more
/// than one matches.
pub fn find_me(members: &[HostEntry], name: &str) -> Result<usize, String> {
    let name = name.trim();
    let with_port = name
        .rsplit_once(':')
        .filter(|(host, _)| !host.contains(':') || host.starts_with('['))
        .and_then(|(host, port)| {
            Some((
                host.trim_start_matches('[').trim_end_matches(']'),
                port.parse::<u16>().ok()?,
            ))
        });
    let matches: Vec<usize> = members
        .iter()
        .enumerate()
        .filter(|(_, m)| match with_port {
            Some((host, port)) => m.host == host && m.port == port,
            None => m.host == name.trim_start_matches('[').trim_end_matches(']'),
        })
        .map(|(i, _)| i)
        .collect();
    let listed = || {
        members
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match matches.as_slice() {
        [me] => Ok(*me),
        [] => Err(format!(
            "HA_HOSTS ({}) has no entry for hostname {name:?}; set HOSTNAME_OVERWRITE to this member's \
             host (or host:port) as written in HA_HOSTS, or fix HA_HOSTS",
            listed()
        )),
        _ => Err(format!(
            "hostname {name:?} matches {} entries of HA_HOSTS ({}); members on one host need \
             HOSTNAME_OVERWRITE=host:port",
            matches.len(),
            listed()
        )),
    }
}

impl fmt::Display for HostEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_v4_and_bracketed_v6() {
        for (raw, host, port) in [
            ("http://redhac-0.redhac:8001", "redhac-0.redhac", 8001),
            (" https://127.0.0.1:7001 ", "127.0.0.1", 7001),
            ("http://[::1]:8003", "::1", 8003),
        ] {
            let e = HostEntry::parse(raw).unwrap();
            assert_eq!((e.host.as_str(), e.port), (host, port));
            assert_eq!(HostEntry::parse(&e.to_string()).unwrap(), e);
        }
    }

    #[test]
    fn finds_me_exactly() {
        let m: Vec<_> = [
            "http://redhac-0.redhac:8001",
            "http://redhac-1.redhac:8001",
            "http://redhac-10.redhac:8001",
        ]
        .iter()
        .map(|h| HostEntry::parse(h).unwrap())
        .collect();
        assert_eq!(find_me(&m, "redhac-1.redhac"), Ok(1));
        assert_eq!(find_me(&m, " redhac-10.redhac:8001 "), Ok(2));
        let e = find_me(&m, "redhac-1").unwrap_err();
        assert!(
            e.contains("no entry")
                && e.contains("\"redhac-1\"")
                && e.contains("redhac-0.redhac:8001"),
            "{e}"
        );
        assert!(find_me(&m, "redhac-1.redhac:9999").is_err());

        let local: Vec<_> = [
            "http://127.0.0.1:7001",
            "http://127.0.0.1:7002",
            "http://[::1]:7003",
        ]
        .iter()
        .map(|h| HostEntry::parse(h).unwrap())
        .collect();
        assert_eq!(find_me(&local, "127.0.0.1:7002"), Ok(1));
        assert_eq!(find_me(&local, "[::1]:7003"), Ok(2));
        assert_eq!(find_me(&local, "::1"), Ok(2));
        let e = find_me(&local, "127.0.0.1").unwrap_err();
        assert!(
            e.contains("matches 2 entries") && e.contains("HOSTNAME_OVERWRITE"),
            "{e}"
        );
    }
}
