//! `lockfight memory`: resident bytes per entry of a lock server.
//!
//! Reads the server's resident memory idle, then after creating N locks,
//! then after creating N data items of `--value-bytes` bytes, and reports
//! the growth per entry, and that growth minus the bytes the client sent
//! for the entry (name, ID, value): the server's own overhead per entry.
//! Entries are created on one connection, a batch of requests written
//! before its replies are read, and removed again at the end.

use std::time::{SystemTime, UNIX_EPOCH};

use jackrabbit_dlm::protocol::Encoding;
use serde::Serialize;

use crate::control::Session;
use crate::procfs;
use crate::report::Table;
use crate::target::{Kind, Target};
use crate::wire::resp;
use crate::wire::{Op, Outcome, Parsed, jackrabbit, push_decimal};

/// Requests written before their replies are read.
const BATCH: usize = 1000;
/// Lifetime of the entries, far longer than a measurement.
const TTL_SECS: u64 = 3600;
/// The ID that owns every entry.
const OWNER: &[u8] = b"lockfight-memory";

/// Memory figures of one server.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryResult {
    pub target: String,
    pub entries: u64,
    pub value_bytes: usize,
    pub idle_resident_bytes: u64,
    pub lock_resident_bytes_per_entry: f64,
    /// Name and ID bytes of one lock.
    pub lock_payload_bytes: f64,
    pub lock_overhead_bytes_per_entry: f64,
    pub data_resident_bytes_per_entry: f64,
    /// Name, ID (Jackrabbit only) and value bytes of one data item.
    pub data_payload_bytes: f64,
    pub data_overhead_bytes_per_entry: f64,
}

/// What is being created or removed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Lock,
    Put,
    Unlock,
    Erase,
}

/// Name of entry `i`; locks and data items get different names so the
/// figures do not depend on the server sharing names between namespaces.
fn name(out: &mut Vec<u8>, nonce: &str, step: Step, i: u64) {
    out.extend_from_slice(nonce.as_bytes());
    out.push(if matches!(step, Step::Lock | Step::Unlock) {
        b'l'
    } else {
        b'd'
    });
    push_decimal(out, i);
}

fn write_request(out: &mut Vec<u8>, kind: Kind, nonce: &str, step: Step, i: u64, value: &[u8]) {
    let mut key = Vec::with_capacity(32);
    name(&mut key, nonce, step, i);
    let mut ttl = Vec::new();
    match kind {
        Kind::Redis => match step {
            Step::Lock => {
                push_decimal(&mut ttl, TTL_SECS * 1000);
                resp::write_args(out, &[b"SET", &key, OWNER, b"NX", b"PX", &ttl]);
            }
            Step::Put => {
                push_decimal(&mut ttl, TTL_SECS);
                resp::write_args(out, &[b"SET", &key, value, b"EX", &ttl]);
            }
            Step::Unlock | Step::Erase => resp::write_args(out, &[b"DEL", &key]),
        },
        // run_memory refuses etcd targets before anything is written.
        Kind::Jackrabbit | Kind::Echo | Kind::Etcd => {
            let action: &[u8] = match step {
                Step::Lock => b"Lock",
                Step::Put => b"Put",
                Step::Unlock => b"Unlock",
                Step::Erase => b"Erase",
            };
            out.extend_from_slice(b"{\"ID\":\"");
            out.extend_from_slice(OWNER);
            out.extend_from_slice(b"\",\"FileName\":\"");
            out.extend_from_slice(&key);
            out.extend_from_slice(b"\",\"Action\":\"");
            out.extend_from_slice(action);
            out.extend_from_slice(b"\",\"Expire\":\"");
            push_decimal(out, TTL_SECS);
            if step == Step::Put {
                out.extend_from_slice(b"\",\"DataStore\":\"");
                out.extend_from_slice(value);
            }
            out.extend_from_slice(b"\"}\n");
        }
    }
}

/// Whether the reply at the front of `buf` grants `step`; `Ok(None)` when
/// the reply is incomplete.
fn take_reply(buf: &[u8], kind: Kind, step: Step) -> Result<Option<(bool, usize)>, String> {
    let op = match step {
        Step::Lock => Op::Lock,
        Step::Put => Op::Put(0),
        Step::Unlock | Step::Erase => Op::Unlock,
    };
    let parsed = match kind {
        Kind::Redis if matches!(step, Step::Unlock | Step::Erase) => match resp::parse_value(buf) {
            Ok(None) => Parsed::Incomplete,
            Ok(Some((resp::Value::Integer(_), len))) => Parsed::Reply {
                outcome: Outcome::Unlocked,
                len,
            },
            _ => Parsed::Garbled,
        },
        Kind::Redis => resp::parse_reply(buf, op),
        _ => {
            let mut scratch = Vec::new();
            match jackrabbit::parse_reply(buf, op, Encoding::Plain, &mut scratch) {
                // Erase answers Done, which the unlock mapping does not know.
                Parsed::Reply {
                    outcome: Outcome::Unexpected,
                    len,
                } if step == Step::Erase => {
                    let ok = jackrabbit::interpret(&buf[..len], Op::Put(0)) == Outcome::Done;
                    Parsed::Reply {
                        outcome: if ok {
                            Outcome::Unlocked
                        } else {
                            Outcome::Unexpected
                        },
                        len,
                    }
                }
                other => other,
            }
        }
    };
    match parsed {
        Parsed::Incomplete => Ok(None),
        Parsed::Garbled => Err("garbled reply while filling the server".into()),
        Parsed::Reply { outcome, len } => Ok(Some((
            matches!(
                outcome,
                Outcome::Locked(_) | Outcome::Done | Outcome::Unlocked
            ),
            len,
        ))),
    }
}

/// Runs `step` for entries `0..entries`; fails at the first refusal.
fn apply(
    target: &Target,
    nonce: &str,
    step: Step,
    entries: u64,
    value: &[u8],
) -> Result<(), String> {
    let mut session = Session::open(target.addr)?;
    let mut request = Vec::with_capacity(BATCH * 128);
    let mut first = 0;
    while first < entries {
        let last = (first + BATCH as u64).min(entries);
        request.clear();
        for i in first..last {
            write_request(&mut request, target.kind, nonce, step, i, value);
        }
        session.send(&request)?;
        for _ in first..last {
            let granted = session.receive(|buf| take_reply(buf, target.kind, step))?;
            if !granted {
                return Err(format!(
                    "{} refused an entry after {first} (memory cap?)",
                    target.label
                ));
            }
        }
        first = last;
    }
    Ok(())
}

/// Measures one target; `pid` is its server process.
pub fn measure(
    target: &Target,
    pid: u32,
    entries: u64,
    value_bytes: usize,
) -> Result<MemoryResult, String> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let nonce = format!("m{nanos:x}");
    let value = vec![b'v'; value_bytes];
    let idle = procfs::resident_bytes(pid)?;
    apply(target, &nonce, Step::Lock, entries, &value)?;
    let with_locks = procfs::resident_bytes(pid)?;
    apply(target, &nonce, Step::Put, entries, &value)?;
    let with_data = procfs::resident_bytes(pid)?;
    apply(target, &nonce, Step::Unlock, entries, &value)?;
    apply(target, &nonce, Step::Erase, entries, &value)?;

    let n = entries as f64;
    let mut sample = Vec::new();
    name(&mut sample, &nonce, Step::Lock, entries / 2);
    let lock_payload = (sample.len() + OWNER.len()) as f64;
    let data_payload = lock_payload + value_bytes as f64
        - if target.kind == Kind::Redis {
            OWNER.len() as f64
        } else {
            0.0
        };
    let per_lock = (with_locks as f64 - idle as f64) / n;
    let per_item = (with_data as f64 - with_locks as f64) / n;
    Ok(MemoryResult {
        target: target.label.clone(),
        entries,
        value_bytes,
        idle_resident_bytes: idle,
        lock_resident_bytes_per_entry: per_lock,
        lock_payload_bytes: lock_payload,
        lock_overhead_bytes_per_entry: per_lock - lock_payload,
        data_resident_bytes_per_entry: per_item,
        data_payload_bytes: data_payload,
        data_overhead_bytes_per_entry: per_item - data_payload,
    })
}

/// One row per target.
pub fn table(results: &[MemoryResult]) -> Table {
    let mut t = Table::new(&[
        "target",
        "entries",
        "idle RSS",
        "bytes/lock",
        "lock payload",
        "lock overhead",
        "bytes/item",
        "item payload",
        "item overhead",
    ]);
    for r in results {
        t.push(vec![
            r.target.clone(),
            r.entries.to_string(),
            format!(
                "{:.1} MiB",
                r.idle_resident_bytes as f64 / (1024.0 * 1024.0)
            ),
            format!("{:.0}", r.lock_resident_bytes_per_entry),
            format!("{:.0}", r.lock_payload_bytes),
            format!("{:.0}", r.lock_overhead_bytes_per_entry),
            format!("{:.0}", r.data_resident_bytes_per_entry),
            format!("{:.0}", r.data_payload_bytes),
            format!("{:.0}", r.data_overhead_bytes_per_entry),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_look_right() {
        let mut out = Vec::new();
        write_request(&mut out, Kind::Jackrabbit, "n", Step::Put, 7, b"vv");
        let line = String::from_utf8(out.clone()).unwrap();
        let json: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(json["FileName"], "nd7");
        assert_eq!(json["DataStore"], "vv");
        out.clear();
        write_request(&mut out, Kind::Redis, "n", Step::Lock, 7, b"");
        assert!(out.starts_with(b"*6\r\n$3\r\nSET\r\n$3\r\nnl7\r\n"));
    }

    #[test]
    fn replies_grant_or_refuse() {
        let ok = |b: &[u8], k, s| take_reply(b, k, s).unwrap().map(|(g, _)| g);
        assert_eq!(
            ok(b"{\"Status\":\"Locked\"}\n", Kind::Jackrabbit, Step::Lock),
            Some(true)
        );
        assert_eq!(
            ok(b"{\"Status\":\"NO\"}\n", Kind::Jackrabbit, Step::Put),
            Some(false)
        );
        assert_eq!(
            ok(b"{\"Status\":\"Done\"}\n", Kind::Jackrabbit, Step::Erase),
            Some(true)
        );
        assert_eq!(
            ok(
                b"{\"Status\":\"Unlocked\"}\n",
                Kind::Jackrabbit,
                Step::Unlock
            ),
            Some(true)
        );
        assert_eq!(ok(b":1\r\n", Kind::Redis, Step::Erase), Some(true));
        assert_eq!(ok(b"+OK\r\n", Kind::Redis, Step::Put), Some(true));
        assert_eq!(ok(b"+OK", Kind::Redis, Step::Put), None);
    }
}
