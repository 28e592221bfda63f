//! Redis's RESP, just the part lockfight needs.
//!
//! Locks are `SET name owner NX PX ms`; unlocking runs the standard
//! compare-and-delete script by its SHA with `EVALSHA`, so a fighter never
//! deletes a lock someone else holds; the counters are plain `GET`/`SET` (Redis has no owners for
//! plain keys, so the counter owner ID of Jackrabbit has no counterpart).
//! Replies are one of simple string, error, integer or bulk string; an array
//! never answers these commands and is treated as garbage.

use super::{COUNTER_TTL_SECS, Names, Op, Outcome, Parsed, parse_decimal, push_decimal};

/// Deletes the lock only if the caller still holds it.
pub const UNLOCK_SCRIPT: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/// One reply value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Simple(&'a [u8]),
    Error(&'a [u8]),
    Integer(i64),
    /// `None` is the nil bulk string.
    Bulk(Option<&'a [u8]>),
}

/// Appends a command made of `args` as bulk strings.
pub fn write_args(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    push_decimal(out, args.len() as u64);
    out.extend_from_slice(b"\r\n");
    for arg in args {
        out.push(b'$');
        push_decimal(out, arg.len() as u64);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends the command for `op`.
pub fn write_command(
    out: &mut Vec<u8>,
    names: &Names,
    sha: &[u8],
    owner: &[u8],
    resource: u32,
    op: Op,
) {
    let r = resource as usize;
    match op {
        // Redis has no shares; lockfight refuses shared modes against it.
        Op::Lock | Op::LockShared => write_args(
            out,
            &[
                b"SET",
                &names.locks[r],
                owner,
                b"NX",
                b"PX",
                names.expire_ms.as_bytes(),
            ],
        ),
        Op::Unlock => write_args(out, &[b"EVALSHA", sha, b"1", &names.locks[r], owner]),
        Op::Get => write_args(out, &[b"GET", &names.counters[r]]),
        Op::Put(value) => {
            let mut digits = Vec::with_capacity(20);
            push_decimal(&mut digits, value);
            let mut ttl = Vec::with_capacity(10);
            push_decimal(&mut ttl, u64::from(COUNTER_TTL_SECS));
            write_args(out, &[b"SET", &names.counters[r], &digits, b"EX", &ttl]);
        }
    }
}

/// Parses one value at the front of `buf`: `Ok(None)` if incomplete,
/// `Err(())` if it cannot be a reply to lockfight's commands.
pub fn parse_value(buf: &[u8]) -> Result<Option<(Value<'_>, usize)>, ()> {
    let Some(nl) = memchr::memchr(b'\n', buf) else {
        return Ok(None);
    };
    if nl < 2 || buf[nl - 1] != b'\r' {
        return Err(());
    }
    let body = &buf[1..nl - 1];
    let after = nl + 1;
    let value = match buf[0] {
        b'+' => Value::Simple(body),
        b'-' => Value::Error(body),
        b':' => Value::Integer(parse_signed(body).ok_or(())?),
        b'$' => {
            let len = parse_signed(body).ok_or(())?;
            if len == -1 {
                Value::Bulk(None)
            } else {
                let len = usize::try_from(len).map_err(|_| ())?;
                let end = after + len;
                if buf.len() < end + 2 {
                    return Ok(None);
                }
                if &buf[end..end + 2] != b"\r\n" {
                    return Err(());
                }
                return Ok(Some((Value::Bulk(Some(&buf[after..end])), end + 2)));
            }
        }
        _ => return Err(()),
    };
    Ok(Some((value, after)))
}

fn parse_signed(text: &[u8]) -> Option<i64> {
    match text {
        [b'-', digits @ ..] => parse_decimal(digits)
            .and_then(|n| i64::try_from(n).ok())
            .map(|n| -n),
        _ => parse_decimal(text).and_then(|n| i64::try_from(n).ok()),
    }
}

/// Looks for the reply to `op` at the front of `buf`.
pub fn parse_reply(buf: &[u8], op: Op) -> Parsed {
    let (value, len) = match parse_value(buf) {
        Ok(Some(found)) => found,
        Ok(None) => return Parsed::Incomplete,
        Err(()) => return Parsed::Garbled,
    };
    let outcome = match (op, value) {
        (Op::Lock | Op::LockShared, Value::Simple(b"OK")) => Outcome::Locked(None),
        (Op::Lock | Op::LockShared, Value::Bulk(None)) => Outcome::NotOwner,
        (Op::Unlock, Value::Integer(1)) => Outcome::Unlocked,
        (Op::Unlock, Value::Integer(0)) => Outcome::NotOwner,
        (Op::Get, Value::Bulk(None)) => Outcome::NotFound,
        (Op::Get, Value::Bulk(Some(text))) => {
            parse_decimal(text).map_or(Outcome::Unexpected, Outcome::Value)
        }
        (Op::Put(_), Value::Simple(b"OK")) => Outcome::Done,
        _ => Outcome::Unexpected,
    };
    Parsed::Reply { outcome, len }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_bulk_string_arrays() {
        let names = Names::new("n", 1, 1.5, None);
        let mut out = Vec::new();
        write_command(&mut out, &names, b"sha", b"f", 0, Op::Lock);
        assert_eq!(
            out,
            b"*6\r\n$3\r\nSET\r\n$5\r\nlfnr0\r\n$1\r\nf\r\n$2\r\nNX\r\n$2\r\nPX\r\n$4\r\n1500\r\n"
        );
        out.clear();
        write_command(&mut out, &names, b"sha", b"f", 0, Op::Unlock);
        assert_eq!(
            out,
            b"*5\r\n$7\r\nEVALSHA\r\n$3\r\nsha\r\n$1\r\n1\r\n$5\r\nlfnr0\r\n$1\r\nf\r\n"
        );
        out.clear();
        write_command(&mut out, &names, b"sha", b"f", 0, Op::Put(12));
        assert_eq!(
            out,
            b"*5\r\n$3\r\nSET\r\n$5\r\nlfnc0\r\n$2\r\n12\r\n$2\r\nEX\r\n$4\r\n3600\r\n"
        );
    }

    #[test]
    fn values_parse() {
        assert_eq!(parse_value(b"+OK\r\n"), Ok(Some((Value::Simple(b"OK"), 5))));
        assert_eq!(
            parse_value(b"-ERR x\r\n"),
            Ok(Some((Value::Error(b"ERR x"), 8)))
        );
        assert_eq!(parse_value(b":-3\r\n"), Ok(Some((Value::Integer(-3), 5))));
        assert_eq!(parse_value(b"$-1\r\n"), Ok(Some((Value::Bulk(None), 5))));
        assert_eq!(
            parse_value(b"$2\r\n41\r\n+"),
            Ok(Some((Value::Bulk(Some(b"41")), 8)))
        );
        assert_eq!(parse_value(b"$2\r\n41"), Ok(None));
        assert_eq!(parse_value(b"+OK"), Ok(None));
        assert_eq!(parse_value(b"*1\r\n"), Err(()));
        assert_eq!(parse_value(b"$2\r\n412\r\n"), Err(()));
    }

    #[test]
    fn replies_map_to_outcomes() {
        let r = |b: &[u8], op| match parse_reply(b, op) {
            Parsed::Reply { outcome, .. } => outcome,
            other => panic!("{other:?}"),
        };
        assert_eq!(r(b"+OK\r\n", Op::Lock), Outcome::Locked(None));
        assert_eq!(r(b"$-1\r\n", Op::Lock), Outcome::NotOwner);
        assert_eq!(r(b":1\r\n", Op::Unlock), Outcome::Unlocked);
        assert_eq!(r(b":0\r\n", Op::Unlock), Outcome::NotOwner);
        assert_eq!(r(b"$1\r\n7\r\n", Op::Get), Outcome::Value(7));
        assert_eq!(r(b"$-1\r\n", Op::Get), Outcome::NotFound);
        assert_eq!(r(b"+OK\r\n", Op::Put(1)), Outcome::Done);
        assert_eq!(r(b"-NOSCRIPT x\r\n", Op::Unlock), Outcome::Unexpected);
    }
}
