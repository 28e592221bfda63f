//! The servers lockfight can fight over, named by URL on the command line.
//!
//! An etcd target may name several members (`etcd://H:P,H:P,H:P`); every
//! other kind names one address. Parsing never connects: a target built
//! without the `etcd` feature still parses, and is refused where the run
//! is validated, with the reason.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

/// Which protocol a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Jackrabbit,
    Redis,
    Echo,
    /// etcd through its gRPC API (the `etcd` feature).
    Etcd,
}

impl Kind {
    fn scheme(self) -> &'static str {
        match self {
            Kind::Jackrabbit => "jackrabbit",
            Kind::Redis => "redis",
            Kind::Echo => "echo",
            Kind::Etcd => "etcd",
        }
    }

    fn default_port(self) -> Option<u16> {
        match self {
            Kind::Jackrabbit => Some(37373),
            Kind::Redis => Some(6379),
            Kind::Echo => None,
            Kind::Etcd => Some(2379),
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
    /// The first (for every kind but etcd, the only) address.
    pub addr: SocketAddr,
    /// Every address named, `addr` first: an etcd cluster's members.
    pub endpoints: Vec<SocketAddr>,
    /// Its processes, for CPU accounting (`--server-pid`): one, or each
    /// member of a cluster, whose CPU seconds are added up.
    pub pids: Vec<u32>,
}

/// Parses `[LABEL=]SCHEME://HOST[:PORT]`, or for etcd
/// `[LABEL=]etcd://HOST[:PORT][,HOST[:PORT]...]`.
pub fn parse(text: &str) -> Result<Target, String> {
    let (label, url) = match text.split_once('=') {
        Some((label, url)) if !label.contains("://") => (Some(label), url),
        _ => (None, text),
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("target {text:?} is not SCHEME://HOST:PORT"))?;
    let kind = [Kind::Jackrabbit, Kind::Redis, Kind::Echo, Kind::Etcd]
        .into_iter()
        .find(|k| k.scheme() == scheme)
        .ok_or_else(|| {
            format!("target {text:?}: scheme must be jackrabbit, redis, echo or etcd")
        })?;
    let rest = rest.trim_end_matches('/');
    let hosts: Vec<&str> = if kind == Kind::Etcd {
        rest.split(',').collect()
    } else {
        vec![rest]
    };
    let endpoints = hosts
        .into_iter()
        .map(|host| address(text, kind, host))
        .collect::<Result<Vec<_>, _>>()?;
    let label = label.map_or_else(|| kind.to_string(), str::to_string);
    if label.is_empty() {
        return Err(format!("target {text:?} has an empty label"));
    }
    Ok(Target {
        label,
        kind,
        addr: endpoints[0],
        endpoints,
        pids: Vec::new(),
    })
}

/// The socket address of one `HOST[:PORT]` of target `text`.
fn address(text: &str, kind: Kind, host: &str) -> Result<SocketAddr, String> {
    if host.is_empty() {
        return Err(format!("target {text:?} names an empty host"));
    }
    let has_port = match host.rfind(']') {
        Some(bracket) => host[bracket..].contains(':'),
        None => host.contains(':'),
    };
    let hostport = if has_port {
        host.to_string()
    } else {
        let port = kind
            .default_port()
            .ok_or_else(|| format!("target {text:?} needs a port"))?;
        format!("{host}:{port}")
    };
    hostport
        .to_socket_addrs()
        .map_err(|e| format!("target {text:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("target {text:?}: no address"))
}

/// The processes of one `--server-pid`.
#[derive(Debug, Clone)]
pub struct Pids(pub Vec<u32>);

impl Pids {
    /// clap's parser of `--server-pid`.
    pub fn parse(text: &str) -> Result<Pids, String> {
        parse_pids(text).map(Pids)
    }
}

/// Parses a `--server-pid` value: `PID`, or `PID+PID+...` for a cluster
/// whose members' CPU seconds are added up; `0` for none.
pub fn parse_pids(text: &str) -> Result<Vec<u32>, String> {
    let pids = text
        .split('+')
        .map(|p| {
            p.trim()
                .parse::<u32>()
                .map_err(|e| format!("{p:?} is not a process ID: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(pids.into_iter().filter(|&p| p != 0).collect())
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
        assert!(
            parse("jackrabbit://127.0.0.1:1,127.0.0.1:2").is_err(),
            "only etcd names several members"
        );
    }

    #[test]
    fn parses_etcd_members_and_cluster_pids() {
        let t = parse("three=etcd://127.0.0.1:2379,127.0.0.1:22379,[::1]").unwrap();
        assert_eq!((t.kind, t.label.as_str()), (Kind::Etcd, "three"));
        let ports: Vec<u16> = t.endpoints.iter().map(SocketAddr::port).collect();
        assert_eq!(ports, [2379, 22379, 2379]);
        assert_eq!(t.addr, t.endpoints[0]);
        let t = parse("etcd://127.0.0.1").unwrap();
        assert_eq!((t.label.as_str(), t.endpoints.len()), ("etcd", 1));
        assert!(parse("etcd://127.0.0.1:1,").is_err(), "an empty member");
        assert_eq!(parse_pids("12+34+56").unwrap(), [12, 34, 56]);
        assert_eq!(parse_pids("0").unwrap(), Vec::<u32>::new());
        assert!(parse_pids("12+x").is_err());
    }
}
