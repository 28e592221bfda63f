//! Replays fuzz inputs through the fuzz targets' own checks, on stable Rust.
//!
//! The checks live in `fuzz/src/` (the cargo-fuzz package) and are included
//! here by path, so a regression test runs exactly the code the fuzzer ran.
//! Two kinds of test:
//!
//! - every committed seed (`fuzz/corpus/TARGET/seed-*`) passes its target's
//!   check, so a change that breaks a property on ordinary input fails
//!   `cargo test` without a fuzzer;
//! - one test per crash a fuzzer found, named after what was wrong, with the
//!   input (minimised) inline and the commit that fixed it in its comment.
//!
//! To replay any file: `FUZZ_REPLAY=TARGET:PATH cargo test --test
//! fuzz_regressions replay_from_env -- --ignored --nocapture`.

#[path = "../fuzz/src/lib.rs"]
mod checks;

use std::path::Path;

fn check(target: &str, data: &[u8]) {
    match target {
        "frame" => checks::frame::check(data),
        "codec" => checks::codec::check(data),
        "request" => checks::request::check(data),
        "store" => checks::store::check(data),
        "snapshot" => checks::snapshot::check(data),
        "connection" => checks::connection::check(data),
        "peer" => checks::peer::check(data),
        "auth" => checks::auth::check(data),
        "wal" => checks::wal::check(data),
        other => panic!("no fuzz target {other}"),
    }
}

fn replay_seeds(target: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).expect("seed corpus directory") {
        let path = entry.expect("directory entry").path();
        let committed = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("seed-"));
        if committed {
            check(target, &std::fs::read(&path).expect("read seed"));
            seeds += 1;
        }
    }
    assert!(seeds > 0, "no seeds in {}", dir.display());
}

#[test]
fn frame_seeds() {
    replay_seeds("frame");
}

#[test]
fn codec_seeds() {
    replay_seeds("codec");
}

#[test]
fn request_seeds() {
    replay_seeds("request");
}

#[test]
fn store_seeds() {
    replay_seeds("store");
}

#[test]
fn peer_seeds() {
    replay_seeds("peer");
}

#[test]
fn connection_seeds() {
    replay_seeds("connection");
}

#[test]
fn auth_seeds() {
    replay_seeds("auth");
}

#[test]
fn wal_seeds() {
    replay_seeds("wal");
}

#[test]
fn snapshot_seeds() {
    replay_seeds("snapshot");
}

/// The `snapshot` seeds are real snapshots, made by
/// `checks::snapshot::seeds`: they must be what the store writes today, so
/// a change of format shows up here. `FUZZ_WRITE_SEEDS=1` writes them anew.
#[test]
fn snapshot_seeds_are_what_the_store_writes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/snapshot");
    for (name, bytes) in checks::snapshot::seeds() {
        let path = dir.join(format!("seed-{name}"));
        if std::env::var_os("FUZZ_WRITE_SEEDS").is_some() {
            std::fs::create_dir_all(&dir).expect("the seed directory");
            std::fs::write(&path, &bytes).expect("write the seed");
        }
        let committed = std::fs::read(&path).expect("read the seed");
        assert!(
            committed == bytes,
            "{} is not what the store writes",
            path.display()
        );
    }
}

/// A tool, not a test: replays the input that `FUZZ_REPLAY=TARGET:PATH`
/// names through the target's checks (see the module docs). Ignored, since
/// without the variable there is nothing to check.
#[test]
#[ignore = "a tool: run with FUZZ_REPLAY=TARGET:PATH and --ignored"]
fn replay_from_env() {
    let spec = std::env::var("FUZZ_REPLAY").expect("FUZZ_REPLAY=TARGET:PATH");
    let (target, path) = spec.split_once(':').expect("FUZZ_REPLAY=TARGET:PATH");
    check(target, &std::fs::read(path).expect("read the input"));
}

/// Found by `request`: an integer too large for 64 bits made simd-json refuse
/// the whole line, so a request whose unknown (or ignored) key held one was
/// answered `BadPayload` although it is JSON and PROTOCOL.md ignores such
/// keys; the Python server serves it. Fixed by simd-json's
/// `big-int-as-float` feature.
#[test]
fn request_integer_beyond_64_bits_is_still_json() {
    check(
        "request",
        br#"{"ID":"w1","FileName":"jobs","Action":"Vers(ock","Expire":18446744073709551616}"#,
    );
    check(
        "request",
        br#"{"ID":"a","FileName":"f","Action":"Get","Name":-99999999999999999999999}"#,
    );
}

/// Found by `store` in its waiting-acquire mode; the checker was wrong, not
/// the store. `a` holds `n0` for 31 ms, `w1` waits on it; at 34 ms, before
/// any sweep, `w1` itself sends `Unlock n0`. The store notices the expired
/// hold, hands it to its oldest waiter `w1` (as the sweep at 31 ms would
/// have), then serves the `Unlock`, which releases it. The check that a
/// grantee holds its lock now skips a grant caused by the grantee's own
/// `Unlock`, and grants are checked before the reply of the request that
/// caused them.
#[test]
fn store_waiter_granted_by_its_own_unlock_of_an_expired_hold() {
    check(
        "store",
        &[
            0x7f, 0xe8, 0x03, 0x00, 0x00, 0x00, 0x00, 0x06, 0xe9, 0x42, 0x10, 0x14, 0x22, 0x02,
            0x22,
        ],
    );
}

/// Found by `store` in its shared mode (CI, session 5); the checker was
/// wrong, not the store. `d` holds `n0` for 1 ms; `été` (exclusive), `b`
/// (shared) and `a` wait on it. At 9 ms, before any sweep, `été` itself
/// sends a shared `Lock n0` that does not wait. The store notices the
/// expired hold and hands it to its oldest waiter, `été`'s own wait, then
/// serves the request as a conversion by the sole holder, which lets `b`
/// share it. The check that a new hold never passes a waiter now counts a
/// hold handed over to the same ID by that same request as its own.
#[test]
fn store_waiter_handed_an_expired_hold_then_converts_it() {
    check(
        "store",
        &[
            0xf6, 0xce, 0xfc, 0xfb, 0x04, 0x10, 0x14, 0x16, 0x02, 0x2f, 0x05, 0x09, 0x03, 0x00,
            0x00, 0x00, 0x05, 0x34, 0x01, 0x09, 0x32, 0x03, 0x84, 0x01, 0xff, 0xef, 0xff, 0xff,
            0xff, 0x79, 0x79, 0xff, 0xd2, 0xd2, 0xd2, 0xd2, 0xd2, 0xd2, 0xd2, 0xd2, 0xff, 0x00,
            0x00, 0x08, 0x00, 0x05, 0x09, 0xc8, 0x22, 0x41, 0x63, 0x74, 0x69, 0x31, 0x6c, 0x61,
            0x42, 0x61, 0x4d, 0x61, 0x67, 0x61, 0x4d, 0x61, 0x6d, 0x31, 0x6c, 0xcc, 0x0c, 0x06,
            0x10, 0x07, 0x10, 0x0e, 0x02, 0x05,
        ],
    );
}

/// Found while the `connection` target loaded its corpus after learning the
/// waiting acquire; the checker hung, not the server. With `--max-output`
/// at 1 byte, the replies held back behind a waiting `Lock` fill it while
/// nothing can be sent yet; the harness kept draining an empty output
/// instead of pausing the connection until the wait ends, as the reactor
/// does.
#[test]
fn connection_paused_while_replies_wait_behind_a_parked_lock() {
    let seed =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/connection/seed-waits-blocked");
    check("connection", &std::fs::read(seed).expect("read the seed"));
}

/// Found by `connection` after closing a connection and a client's EOF were
/// made one path (`Connection::withdraw_waits`, which answers withdrawn waits
/// `NotOwner`); the checker, not the server, was wrong: it kept the replies a
/// closed connection could no longer send, where the reactor drops them
/// with the connection.
#[test]
fn connection_closed_with_waits_sends_nothing_more() {
    let seed =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/connection/seed-closed-with-waits");
    check("connection", &std::fs::read(seed).expect("read the seed"));
}

/// Found by `frame` once a line over the limit is discarded instead of
/// closing the connection; the checker was wrong, not the framer: while the
/// tail of such a line arrives, `Incomplete` consumes it (that is the
/// discarding), so "asking again changes nothing" holds only outside it.
#[test]
fn frame_the_tail_of_an_overrun_line_is_consumed_as_it_comes() {
    let seed =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/frame/seed-overrun-tail-consumed");
    check("frame", &std::fs::read(seed).expect("read the seed"));
}

/// Found by `connection` when the harness learned to close clients
/// mid-stream; the checker was wrong: it closed a client before it had
/// read what was already sent, so it compared a prefix with the whole.
#[test]
fn connection_closed_mid_stream_after_reading_what_was_sent() {
    let seed =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/connection/seed-closed-mid-stream");
    check("connection", &std::fs::read(seed).expect("read the seed"));
}

/// Found by `connection` in CI after lines over the limit are discarded: a
/// stream that ended inside such a line left the framer discarding, so the
/// connection still reported an unfinished line after end of input. Fixed
/// in `Framer::take_rest`, which ends the discarding with the stream.
#[test]
fn connection_end_of_input_inside_a_discarded_line() {
    let seed = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus/connection/seed-eof-while-discarding");
    check("connection", &std::fs::read(seed).expect("read the seed"));
}

/// Found by `request` in CI; the checker was wrong: its serde_json reading
/// still refused `Expire` of zero or less, which PROTOCOL.md now grants with
/// no time.
#[test]
fn request_expire_zero_is_granted_with_no_time() {
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/request/seed-expire-zero");
    check("request", &std::fs::read(seed).expect("read the seed"));
}

/// Found by `peer` (CI, session 7); the check was wrong, not the wire: a
/// raft message whose snapshot field comes three times decodes to a
/// snapshot with an empty set of unknown fields, and after a round trip to
/// one with none, which protobuf's `==` tells apart though both encode
/// alike. The check now compares the known fields.
#[test]
fn a_raft_message_that_encodes_alike_is_the_same_message() {
    check(
        "peer",
        &[
            0x2c, 0x00, 0x00, 0x00, 0x02, 0x78, 0x78, 0xf0, 0x56, 0x27, 0x4a, 0x1e, 0x55, 0x78,
            0x4a, 0x1e, 0x55, 0x18, 0x3a, 0xc0, 0x6d, 0x78, 0x78, 0x61, 0x50, 0x78, 0x78, 0x78,
            0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
            0x78, 0x78, 0x78, 0x78, 0x4a, 0x1e, 0x55, 0x18, 0x78, 0x88, 0x00,
        ],
    );
}

/// Found by `peer` (CI, session 7), right after the one above: with
/// several fields raft does not know, a round trip writes them back in
/// another order (rust-protobuf keeps them in a hash map), so not even the
/// encodings compare; the known fields do.
#[test]
fn unknown_fields_in_another_order_are_the_same_message() {
    check(
        "peer",
        &[
            0x20, 0x00, 0x00, 0x00, 0x02, 0x08, 0x0a, 0x90, 0x70, 0xc8, 0x92, 0x22, 0x90, 0x90,
            0xc8, 0x2a, 0x0a, 0x40, 0x90, 0x90, 0x90, 0x90, 0x90, 0xff, 0x2d, 0x90, 0xf8, 0x70,
            0xc8, 0x22, 0x90, 0x90, 0x7a, 0xff, 0xff, 0x20, 0x00, 0x00, 0x00, 0x02, 0x08, 0x0a,
            0xc8, 0x32, 0x68, 0x90, 0x70, 0x22, 0x90, 0x90, 0x7a, 0xff, 0xff, 0x3b, 0xff, 0xff,
            0xff, 0xff, 0xf7, 0xff, 0xff, 0xff, 0x03, 0x40, 0x0a,
        ],
    );
}

/// Found by `wal` (CI, session 7), the same as the two `peer` ones above:
/// a snapshot read, written again and read back has the same known fields,
/// but protobuf's `==` sees its unknown ones differ. The check compares
/// the known fields.
#[test]
fn a_snapshot_written_again_keeps_its_known_fields() {
    check(
        "wal",
        &[
            0x4a, 0x52, 0x44, 0x4c, 0x4d, 0x53, 0x4e, 0x50, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00,
            0x00, 0x00, 0x0a, 0x06, 0x08, 0x01, 0x30, 0x2e, 0x30, 0x30, 0x0a, 0x31, 0x18, 0x01,
            0x0e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x74, 0x68, 0x65, 0x20, 0x73, 0x01,
            0x08, 0x02, 0x08, 0x03, 0x10, 0x03, 0x18, 0x33, 0x6b, 0x5c, 0x0d, 0xba,
        ],
    );
}
