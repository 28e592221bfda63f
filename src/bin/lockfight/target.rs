//! The servers lockfight can fight over, named by URL on the command line.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

/// Which protocol a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Jackrabbit,
    Redis,
    Echo,
}

impl Kind {
    fn scheme(self) -> &'static str {
        match self {
            Kind::Jackrabbit => "jackrabbit",
            Kind::Redis => "redis",
            Kind::Echo => "echo",
        }
    }

    fn default_port(self) -> Option<u16> {
        match self {
            Kind::Jackrabbit => Some(37373),
            Kind::Redis => Some(6379),
            Kind::Echo => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme())
    }
}

/// One server under test.
#[derive(Debug, Clone)]
pub struct Target {
    /// Name in the reports: the `LABEL=` prefix, else the scheme.
    pub label: String,
    pub kind: Kind,
    pub addr: SocketAddr,
    /// Its process, for CPU accounting (`--server-pid`).
    pub pid: Option<u32>,
}

/// Parses `[LABEL=]SCHEME://HOST[:PORT]`.
pub fn parse(text: &str) -> Result<Target, String> {
    let (label, url) = match text.split_once('=') {
        Some((label, url)) if !label.contains("://") => (Some(label), url),
        _ => (None, text),
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("target {text:?} is not SCHEME://HOST:PORT"))?;
    let kind = [Kind::Jackrabbit, Kind::Redis, Kind::Echo]
        .into_iter()
        .find(|k| k.scheme() == scheme)
        .ok_or_else(|| format!("target {text:?}: scheme must be jackrabbit, redis or echo"))?;
    let rest = rest.trim_end_matches('/');
    let has_port = match rest.rfind(']') {
        Some(bracket) => rest[bracket..].contains(':'),
        None => rest.contains(':'),
    };
    let hostport = if has_port {
        rest.to_string()
    } else {
        let port = kind
            .default_port()
            .ok_or_else(|| format!("target {text:?} needs a port"))?;
        format!("{rest}:{port}")
    };
    let addr = hostport
        .to_socket_addrs()
        .map_err(|e| format!("target {text:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("target {text:?}: no address"))?;
    let label = label.map_or_else(|| kind.to_string(), str::to_string);
    if label.is_empty() {
        return Err(format!("target {text:?} has an empty label"));
    }
    Ok(Target {
        label,
        kind,
        addr,
        pid: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schemes_ports_and_labels() {
        let t = parse("jackrabbit://127.0.0.1:4000").unwrap();
        assert_eq!(
            (t.kind, t.label.as_str(), t.addr.port()),
            (Kind::Jackrabbit, "jackrabbit", 4000)
        );
        let t = parse("redis://127.0.0.1").unwrap();
        assert_eq!(t.addr.port(), 6379);
        let t = parse("old=jackrabbit://[::1]:5").unwrap();
        assert_eq!((t.label.as_str(), t.addr.port()), ("old", 5));
        assert!(t.addr.is_ipv6());
        assert!(
            parse("echo://127.0.0.1").is_err(),
            "echo has no default port"
        );
        assert!(parse("http://127.0.0.1:1").is_err());
        assert!(parse("127.0.0.1:1").is_err());
        assert!(parse("=echo://127.0.0.1:1").is_err());
    }
}
