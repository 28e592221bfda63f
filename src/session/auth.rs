//! Authentication (PROTOCOL.md, Authentication): the identities read from
//! the identity directory, and the verdict on a request's `Name` and
//! `Identity` and on the anonymous limits.
//!
//! Pure: the identity files are read by the server (`server/identity_dir.rs`)
//! and handed in as bytes; nothing here touches the disk or a clock. An
//! Identity is compared in constant time (`subtle`) and never logged; what
//! an authenticated entry keeps is a [`NameTag`], a digest of its Name.
//!
//! Bounds: a Name is at most 255 bytes; the table holds at most what the
//! server reads (`--max-identities`).

use hashbrown::HashMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::protocol::request::{Credentials, NameTag};
use crate::protocol::{Action, Request};
use crate::time::Millis;

/// The shortest Identity a file may hold (upstream's are 1364 to 2728
/// characters).
pub const MIN_IDENTITY: usize = 1023;
/// The default `MaxSize`: the longest DataStore a Name may put.
pub const DEFAULT_MAX_SIZE: u64 = 16_384;
/// Longest Name, in bytes.
pub const MAX_NAME: usize = 255;

/// One identity file: the secret and what it may put.
#[derive(Clone)]
pub struct Identity {
    secret: Box<[u8]>,
    max_size: u64,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Identity")
            .field("max_size", &self.max_size)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Reads an identity file: one JSON object with `Identity`, a string of
    /// at least [`MIN_IDENTITY`] characters, and optionally `MaxSize`, a
    /// non-negative integer. Anything else is no identity.
    pub fn parse(contents: &[u8]) -> Option<Identity> {
        let mut buf = contents.to_vec();
        let tape = simd_json::to_tape(&mut buf).ok()?;
        let nodes = &tape.0;
        let (&simd_json::Node::Object { len, .. }, mut rest) = nodes.split_first()? else {
            return None;
        };
        let (mut secret, mut max_size) = (None, DEFAULT_MAX_SIZE);
        for _ in 0..len {
            let [simd_json::Node::String(key), value, after @ ..] = rest else {
                return None;
            };
            match (*key, value) {
                ("Identity", simd_json::Node::String(text)) => {
                    secret = Some(text.as_bytes().into());
                }
                ("Identity", _) => return None,
                ("MaxSize", simd_json::Node::Static(simd_json::StaticNode::U64(n))) => {
                    max_size = *n;
                }
                ("MaxSize", simd_json::Node::Static(simd_json::StaticNode::I64(n))) => {
                    max_size = u64::try_from(*n).ok()?;
                }
                ("MaxSize", _) => return None,
                _ => {}
            }
            rest = match *value {
                simd_json::Node::Object { count, .. } | simd_json::Node::Array { count, .. } => {
                    after.get(count..).unwrap_or_default()
                }
                _ => after,
            };
        }
        let secret: Box<[u8]> = secret?;
        let characters = std::str::from_utf8(&secret).ok()?.chars().count();
        (characters >= MIN_IDENTITY).then_some(Identity { secret, max_size })
    }
}

/// Whether `name` is a Name: 1 to 255 bytes of `A-Z a-z 0-9 . _ -`, not
/// starting with `.` (so it names a file inside the directory and no other).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The digest an authenticated entry keeps of its Name.
pub fn name_tag(name: &str) -> NameTag {
    let digest = Sha256::digest(name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    NameTag(u64::from_le_bytes(first))
}

/// The identities by Name.
#[derive(Debug, Clone, Default)]
pub struct Identities {
    by_name: HashMap<Box<str>, Identity>,
}

impl Identities {
    /// No identities.
    pub fn new() -> Identities {
        Identities::default()
    }

    /// Adds `name`'s identity (a later one for the same Name replaces it).
    pub fn insert(&mut self, name: &str, identity: Identity) {
        self.by_name.insert(name.into(), identity);
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// A request that failed authentication: answered `BadPayload` and counted
/// `AuthFailed`, with no hint of why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthFailed;

/// What authentication asks of every request when the server authenticates.
#[derive(Debug, Clone)]
pub struct Policy {
    pub identities: Identities,
    /// The longest `Expire` and `Wait` of a request without a Name.
    pub anonymous_max_ttl: Millis,
    /// The longest `DataStore` a request without a Name may put.
    pub anonymous_max_value: u64,
}

impl Policy {
    /// The Name `request` is authenticated as (`None`: anonymous, within
    /// the anonymous limits), or `Err` for a request to answer
    /// `BadPayload` and count as `AuthFailed` (no hint of why).
    pub fn judge(&self, request: &Request<'_>) -> Result<Option<NameTag>, AuthFailed> {
        match request.credentials() {
            Credentials::Anonymous => {
                let asks_time = matches!(request.action(), Action::Lock | Action::Put);
                if asks_time
                    && (request.expire() > self.anonymous_max_ttl
                        || request.wait() > self.anonymous_max_ttl)
                {
                    return Err(AuthFailed);
                }
                if request.action() == Action::Put
                    && request.data().len() as u64 > self.anonymous_max_value
                {
                    return Err(AuthFailed);
                }
                Ok(None)
            }
            Credentials::Malformed => Err(AuthFailed),
            Credentials::Claimed { name, identity } => {
                if !valid_name(name) {
                    return Err(AuthFailed);
                }
                let identity = identity.ok_or(AuthFailed)?;
                let known = self.identities.by_name.get(name).ok_or(AuthFailed)?;
                if !bool::from(known.secret.ct_eq(identity.as_bytes())) {
                    return Err(AuthFailed);
                }
                if request.action() == Action::Put && request.data().len() as u64 > known.max_size {
                    return Err(AuthFailed);
                }
                Ok(Some(name_tag(name)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(c: char) -> String {
        std::iter::repeat_n(c, 1400).collect()
    }

    fn policy() -> Policy {
        let mut identities = Identities::new();
        let file = format!(r#"{{"Identity":"{}","MaxSize":10}}"#, secret('s'));
        identities.insert("svc", Identity::parse(file.as_bytes()).unwrap());
        Policy {
            identities,
            anonymous_max_ttl: Millis::from_secs(60),
            anonymous_max_value: 4,
        }
    }

    #[test]
    fn identity_files() {
        let good = format!(r#"{{"Identity":"{}"}}"#, secret('a'));
        let id = Identity::parse(good.as_bytes()).unwrap();
        assert_eq!(id.max_size, DEFAULT_MAX_SIZE);
        assert!(
            !format!("{id:?}").contains("aaaa"),
            "the secret is never shown"
        );
        let short = format!(r#"{{"Identity":"{}"}}"#, "a".repeat(MIN_IDENTITY - 1));
        for bad in [
            "",
            "not json",
            "[]",
            r#"{"MaxSize":5}"#,
            r#"{"Identity":5}"#,
            &short,
            &format!(r#"{{"Identity":"{}","MaxSize":-1}}"#, secret('a')),
            &format!(r#"{{"Identity":"{}","MaxSize":"big"}}"#, secret('a')),
        ] {
            assert!(Identity::parse(bad.as_bytes()).is_none(), "{bad:.40}");
        }
    }

    #[test]
    fn names() {
        assert!(valid_name("svc-1.prod_A"));
        for bad in ["", ".hidden", "a/b", "../x", "a b", "é", &"n".repeat(256)] {
            assert!(!valid_name(bad), "{bad:.20}");
        }
        assert_eq!(name_tag("a"), name_tag("a"));
        assert_ne!(name_tag("a"), name_tag("b"));
    }

    #[test]
    fn verdicts() {
        let p = policy();
        let s = secret('s');
        let lock = |expire| {
            Request::new(Action::Lock, "w", "x")
                .unwrap()
                .with_expire(Millis::from_secs(expire))
        };
        let claimed = |name, identity| Credentials::Claimed { name, identity };
        assert_eq!(p.judge(&lock(60)), Ok(None));
        assert_eq!(
            p.judge(&lock(61)),
            Err(AuthFailed),
            "past the anonymous max TTL"
        );
        let put = |data| {
            Request::new(Action::Put, "w", "x")
                .unwrap()
                .with_expire(Millis::from_secs(1))
                .with_data(data)
        };
        assert_eq!(p.judge(&put("1234")), Ok(None));
        assert_eq!(
            p.judge(&put("12345")),
            Err(AuthFailed),
            "past the anonymous max value"
        );
        let ok = lock(3600).with_credentials(claimed("svc", Some(&s)));
        assert_eq!(p.judge(&ok), Ok(Some(name_tag("svc"))));
        let big = put("0123456789a").with_credentials(claimed("svc", Some(&s)));
        assert_eq!(p.judge(&big), Err(AuthFailed), "past its MaxSize");
        let wrong = secret('t');
        let short = &s[..s.len() - 1];
        for bad in [
            claimed("svc", Some(&wrong)),
            claimed("svc", Some(short)),
            claimed("svc", None),
            claimed("other", Some(&s)),
            claimed("../svc", Some(&s)),
            Credentials::Malformed,
        ] {
            assert_eq!(
                p.judge(&lock(1).with_credentials(bad)),
                Err(AuthFailed),
                "{bad:?}"
            );
        }
    }
}
