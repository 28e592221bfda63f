//! What the fighters say to each kind of target, and what the replies mean.
//!
//! A fighter thinks in [`Op`]s (lock, unlock, read or write the counter) and
//! [`Outcome`]s (locked, refused, done...). This module turns the one into
//! request bytes and reply bytes into the other, for the Jackrabbit line
//! protocol (plain or table-encoded), Redis's RESP, and the echo ceiling.
//! It never touches a socket, so the engine and the blocking control client
//! share it.

pub mod jackrabbit;
pub mod resp;

use jackrabbit_dlm::protocol::Encoding;

/// Owner ID of the shared counters under `--verify`.
///
/// Data items belong to the ID that put them, so every fighter must read
/// and write the counters under one common ID, while locks are taken under
/// each fighter's own ID.
pub const COUNTER_OWNER: &[u8] = b"lockfight-counter";

/// Lifetime of a counter, long enough to outlive any run and its check.
pub const COUNTER_TTL_SECS: u32 = 3600;

/// A request a fighter makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Take the lock on the fighter's resource.
    Lock,
    /// Take a share of it (`"Mode":"Shared"`, with the run's `Limit` if
    /// any); Jackrabbit only.
    LockShared,
    /// Release it.
    Unlock,
    /// Read the counter that the resource's lock guards.
    Get,
    /// Write this value into that counter.
    Put(u64),
}

/// What a reply means to the fighter that sent the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The lock is ours, with this fencing token if the reply had one.
    Locked(Option<u64>),
    /// The lock was released (or was not held).
    Unlocked,
    /// Someone else holds the lock (for `Unlock`: someone else holds ours).
    NotOwner,
    /// The counter was written.
    Done,
    /// The counter does not exist yet.
    NotFound,
    /// The counter holds this value.
    Value(u64),
    /// The echo ceiling answered; it says nothing else.
    Answered,
    /// A reply this tool does not expect (an error status, a refusal...).
    Unexpected,
}

/// The result of looking for one reply at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// The reply is not complete yet.
    Incomplete,
    /// One reply, `len` bytes long.
    Reply { outcome: Outcome, len: usize },
    /// The bytes cannot be a reply; the connection is unusable.
    Garbled,
}

/// The resource and counter names of one run, built once.
pub struct Names {
    /// Lock name of each resource.
    pub locks: Vec<Box<[u8]>>,
    /// Name of the counter each resource's lock guards.
    pub counters: Vec<Box<[u8]>>,
    /// `Expire` of a `Lock`, in seconds, as sent to Jackrabbit.
    pub expire_secs: String,
    /// The same in milliseconds, for Redis's `PX`.
    pub expire_ms: String,
    /// `Wait` of a `Lock`, in seconds, in the wait mode.
    pub wait_secs: Option<String>,
    /// `Limit` of a shared `Lock`, in the semaphore mode.
    pub limit: Option<String>,
}

impl Names {
    /// Names for `resources` resources, unique to this run through `nonce`
    /// so that holds and counters left by an earlier run do not interfere.
    pub fn new(nonce: &str, resources: u32, expire_secs: f64, wait_secs: Option<f64>) -> Self {
        let locks = (0..resources)
            .map(|r| format!("lf{nonce}r{r}").into_bytes().into_boxed_slice())
            .collect();
        let counters = (0..resources)
            .map(|r| format!("lf{nonce}c{r}").into_bytes().into_boxed_slice())
            .collect();
        // A TTL in seconds from the command line: far below 2^64 ms, and
        // `as` saturates besides.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let ms = (expire_secs * 1000.0).round().max(1.0) as u64;
        Names {
            locks,
            counters,
            expire_secs: format!("{expire_secs}"),
            expire_ms: ms.to_string(),
            wait_secs: wait_secs.map(|w| format!("{w}")),
            limit: None,
        }
    }

    /// The same names, with `Limit` on shared `Lock`s.
    pub fn with_limit(self, limit: Option<u32>) -> Self {
        Names {
            limit: limit.map(|n| n.to_string()),
            ..self
        }
    }
}

/// How to talk to one target.
#[derive(Debug, Clone)]
pub enum Dialect {
    /// Jackrabbit DLM JSON lines, in `encoding`.
    Jackrabbit { encoding: Encoding },
    /// The same lines sent to the echo ceiling, which answers each with a
    /// fixed reply.
    Echo { encoding: Encoding },
    /// Redis; `unlock_sha` names the compare-and-delete script loaded with
    /// `SCRIPT LOAD` before the run.
    Redis { unlock_sha: Box<[u8]> },
}

impl Dialect {
    /// Appends the request for `op` on `resource` by `owner` to `out`.
    /// `scratch` is a reusable buffer for the table encoding.
    pub fn write(
        &self,
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
        names: &Names,
        owner: &[u8],
        resource: u32,
        op: Op,
    ) {
        match self {
            Dialect::Jackrabbit { encoding } | Dialect::Echo { encoding } => match encoding {
                Encoding::Table => {
                    scratch.clear();
                    jackrabbit::write_json(scratch, names, owner, resource, op);
                    jackrabbit::encode_line(scratch, out);
                }
                Encoding::Plain => {
                    jackrabbit::write_json(out, names, owner, resource, op);
                    out.push(b'\n');
                }
            },
            Dialect::Redis { unlock_sha } => {
                resp::write_command(out, names, unlock_sha, owner, resource, op)
            }
        }
    }

    /// Looks for the reply to `op` at the front of `buf`.
    pub fn parse(&self, buf: &[u8], op: Op, scratch: &mut Vec<u8>) -> Parsed {
        match self {
            Dialect::Jackrabbit { encoding } => {
                jackrabbit::parse_reply(buf, op, *encoding, scratch)
            }
            Dialect::Echo { .. } => match memchr::memchr(b'\n', buf) {
                Some(end) => Parsed::Reply {
                    outcome: Outcome::Answered,
                    len: end + 1,
                },
                None => Parsed::Incomplete,
            },
            Dialect::Redis { .. } => resp::parse_reply(buf, op),
        }
    }
}

/// Appends the decimal digits of a number, without the formatting
/// machinery: the server's own reply writer serves here too.
pub use jackrabbit_dlm::protocol::reply::write_u64 as push_decimal;

/// Parses a whole byte string as an unsigned decimal number.
pub fn parse_decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in text {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_round_trip() {
        for n in [0, 7, 10, 12345, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
            assert_eq!(parse_decimal(&out), Some(n));
        }
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"1x"), None);
        assert_eq!(parse_decimal(b"99999999999999999999"), None);
    }

    #[test]
    fn names_are_unique_per_nonce_and_expire_converts() {
        let n = Names::new("ab", 3, 0.25, Some(1.5));
        assert_eq!(&*n.locks[2], b"lfabr2");
        assert_eq!(&*n.counters[0], b"lfabc0");
        assert_eq!(n.expire_secs, "0.25");
        assert_eq!(n.expire_ms, "250");
        assert_eq!(n.wait_secs.as_deref(), Some("1.5"));
        assert_eq!(Names::new("x", 1, 10.0, None).expire_secs, "10");
    }

    #[test]
    fn echo_answers_any_line() {
        let d = Dialect::Echo {
            encoding: Encoding::Plain,
        };
        let mut s = Vec::new();
        assert_eq!(d.parse(b"anything", Op::Lock, &mut s), Parsed::Incomplete);
        assert_eq!(
            d.parse(b"x\ny", Op::Lock, &mut s),
            Parsed::Reply {
                outcome: Outcome::Answered,
                len: 2
            }
        );
    }
}
