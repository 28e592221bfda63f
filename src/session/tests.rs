//! The session layer without sockets: lines in, reply bytes out.

use super::*;
use crate::protocol::FencingToken;
use crate::stats::Refusals;
use crate::store::StoreConfig;

const T0: Moment = Moment::START;

fn session() -> Session {
    let store = Store::new(
        StoreConfig {
            first_token: FencingToken::new(7),
            ..StoreConfig::unbounded()
        },
        T0,
    );
    Session::new(store, Millis::from_secs(86_400), 4, 1024)
}

/// Feeds `input` in `chunk`-byte reads, serving after each, and returns
/// everything the connection would have sent.
fn feed(
    session: &mut Session,
    conn: &mut Connection,
    input: &[u8],
    chunk: usize,
) -> (Vec<u8>, Served) {
    let mut sent = Vec::new();
    let mut last = Served::AllLines;
    for piece in input.chunks(chunk) {
        let buf = conn.read_buffer();
        buf[..piece.len()].copy_from_slice(piece);
        conn.received(piece.len());
        loop {
            last = conn.serve(session, T0, 1 << 20);
            sent.extend_from_slice(conn.unsent());
            let n = conn.unsent().len();
            conn.sent(n);
            match last {
                Served::Budget => continue,
                _ => break,
            }
        }
    }
    (sent, last)
}

#[test]
fn answers_pipelined_lines_in_order_across_budgets() {
    let mut e = session();
    let mut c = Connection::new(1024, 0);
    let mut input = Vec::new();
    for i in 0..10 {
        input.extend_from_slice(
            format!("{{\"ID\":\"a\",\"FileName\":\"f{i}\",\"Action\":\"Lock\",\"Expire\":5}}\n")
                .as_bytes(),
        );
    }
    let (out, _) = feed(&mut e, &mut c, &input, input.len());
    let lines: Vec<&str> = std::str::from_utf8(&out).unwrap().lines().collect();
    assert_eq!(lines.len(), 10);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(
            *line,
            format!("{{\"Status\":\"Locked\",\"ID\":\"a\",\"Token\":{}}}", 7 + i)
        );
    }
}

#[test]
fn table_encoded_request_gets_table_encoded_reply() {
    let mut e = session();
    let mut c = Connection::new(1024, 0);
    let mut line = codec::encode(br#"{"ID":"w1","FileName":"jobs","Action":"Lock","Expire":"30"}"#)
        .into_bytes();
    line.extend_from_slice(b"\r\n");
    let (out, _) = feed(&mut e, &mut c, &line, 3);
    let reply = codec::decode(out.strip_suffix(b"\n").unwrap()).unwrap();
    assert_eq!(reply, br#"{"Status":"Locked","ID":"w1","Token":7}"#);
}

#[test]
fn bad_encoded_line_is_an_encoded_bad_payload() {
    let mut e = session();
    let mut c = Connection::new(1024, 0);
    let (out, _) = feed(&mut e, &mut c, b"a^1\nzz~~\n", 100);
    let lines: Vec<&[u8]> = out
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len(), 2);
    for l in lines {
        assert_eq!(codec::decode(l).unwrap(), br#"{"Status":"BadPayload"}"#);
    }
}

#[test]
fn whitespace_lines_get_no_reply() {
    let mut e = session();
    let mut c = Connection::new(1024, 0);
    let (out, _) = feed(&mut e, &mut c, b"\n \t \r\n\n", 2);
    assert!(out.is_empty());
    assert_eq!(e.store.counters.requests_in, 0);
}

#[test]
fn an_overrun_is_answered_once_and_keeps_no_byte_of_the_line() {
    let mut e = session();
    let mut c = Connection::new(64, 0);
    let (out, last) = feed(&mut e, &mut c, &[b'x'; 1000], 10);
    assert_eq!(last, Served::AllLines);
    // 'x' is not '{': the line announced the table encoding.
    let reply = codec::decode(out.strip_suffix(b"\n").unwrap()).unwrap();
    assert_eq!(reply, br#"{"Status":"BadPayload"}"#);
    assert_eq!(e.store.counters.data_overrun, 1);
    assert_eq!(e.store.counters.bad_payload, 1);
    assert!(!c.has_input(), "nothing of the line is kept");
    assert!(c.partial_since().is_some(), "still an unfinished line");
    // Its newline ends the discarding; a plain overrun is answered plain.
    let (out, _) = feed(&mut e, &mut c, b"xx\n{\"ID\":", 1);
    assert!(out.is_empty());
    let mut long = b"{\"ID\":\"a\",\"FileName\":\"".to_vec();
    long.extend_from_slice(&[b'n'; 100]);
    long.extend_from_slice(b"\"}\n");
    let (out, _) = feed(&mut e, &mut c, &long, 7);
    assert_eq!(out, b"{\"Status\":\"BadPayload\"}\n");
    assert_eq!(e.store.counters.data_overrun, 2);
}

#[test]
fn unterminated_last_line_is_answered_at_end_of_input() {
    let mut e = session();
    let mut c = Connection::new(1024, 0);
    let line = br#"{"ID":"a","FileName":"f","Action":"Version"}"#;
    let (out, _) = feed(&mut e, &mut c, line, 7);
    assert!(out.is_empty());
    c.finish(&mut e, T0);
    assert!(c.unsent().starts_with(br#"{"Status":"Version""#));
}

#[test]
fn leading_whitespace_before_the_object() {
    let mut e = session();
    let mut c = Connection::new(1024, 0);
    let (out, _) = feed(
        &mut e,
        &mut c,
        b"  {\"ID\":\"a\",\"FileName\":\"f\",\"Action\":\"version\"}  \n",
        100,
    );
    assert!(out.starts_with(br#"{"Status":"Version""#));
}

#[test]
fn partial_line_timestamp() {
    let mut e = session();
    let mut c = Connection::new(1024, 0);
    c.read_buffer()[..3].copy_from_slice(b"{\"I");
    c.received(3);
    c.serve(&mut e, Moment::from_ms(5), 1 << 20);
    assert_eq!(c.partial_since(), Some(Moment::from_ms(5)));
    c.serve(&mut e, Moment::from_ms(9), 1 << 20);
    assert_eq!(c.partial_since(), Some(Moment::from_ms(5)));
}

#[test]
fn replies_behind_a_parked_request_wait_for_it() {
    let mut e = session();
    let mut holder = Connection::new(1024, 1);
    let mut waiter = Connection::new(1024, 2);
    feed(
        &mut e,
        &mut holder,
        b"{\"ID\":\"h\",\"FileName\":\"x\",\"Action\":\"Lock\",\"Expire\":9}\n",
        100,
    );
    let pipelined = concat!(
        "{\"ID\":\"w\",\"FileName\":\"x\",\"Action\":\"Lock\",\"Expire\":9,\"Wait\":9}\n",
        "{\"ID\":\"w\",\"FileName\":\"v\",\"Action\":\"Version\"}\n",
    );
    let (out, _) = feed(&mut e, &mut waiter, pipelined.as_bytes(), 1000);
    assert!(out.is_empty(), "nothing may overtake the parked Lock");
    assert!(waiter.is_waiting());
    assert!(
        waiter.pending_output() > 0,
        "the Version reply is held back"
    );
    // The holder unlocks: the store grants the waiter.
    feed(
        &mut e,
        &mut holder,
        b"{\"ID\":\"h\",\"FileName\":\"x\",\"Action\":\"Unlock\"}\n",
        100,
    );
    let mut done = Vec::new();
    e.completions(&mut done);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, 2, "routed to the waiting connection");
    waiter.complete(&mut e, done[0].1);
    let text = String::from_utf8(waiter.unsent().to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].starts_with("{\"Status\":\"Locked\",\"ID\":\"w\""),
        "{text}"
    );
    assert!(lines[1].starts_with("{\"Status\":\"Version\""), "{text}");
    assert!(!waiter.is_waiting());
    assert_eq!(waiter.pending_output(), waiter.unsent().len());
}

#[test]
fn reading_after_an_overrun_starts_afresh() {
    let mut e = session();
    let mut c = Connection::new(64, 0);
    let (first, _) = feed(&mut e, &mut c, &[b'x'; 100], 10);
    assert!(!first.is_empty(), "the overrun was answered");
    feed(&mut e, &mut c, b"\n", 1);
    let (out, _) = feed(
        &mut e,
        &mut c,
        b"{\"ID\":\"a\",\"FileName\":\"f\",\"Action\":\"Version\"}\n",
        5,
    );
    assert!(out.starts_with(b"{\"Status\":\"Version\""));
}

#[test]
fn an_audited_connection_counts_its_own_refusals() {
    let mut e = session();
    let mut holder = Connection::new(1024, 1);
    let mut audited = Connection::new(64, 2);
    audited.audit();
    feed(
        &mut e,
        &mut holder,
        b"{\"ID\":\"h\",\"FileName\":\"x\",\"Action\":\"Lock\",\"Expire\":9}\n",
        100,
    );
    // NotOwner, BadPayload, an overrun (BadPayload), and a wait withdrawn
    // (NotOwner); nothing of the holder's.
    let lines = concat!(
        "{\"ID\":\"w\",\"FileName\":\"x\",\"Action\":\"Lock\",\"Expire\":9}\n",
        "{nope\n",
    );
    feed(&mut e, &mut audited, lines.as_bytes(), 1000);
    feed(&mut e, &mut audited, &[b'x'; 100], 100);
    feed(&mut e, &mut audited, b"\n", 1);
    feed(
        &mut e,
        &mut audited,
        b"{\"ID\":\"w\",\"FileName\":\"x\",\"Action\":\"Lock\",\"Expire\":9,\"Wait\":9}\n",
        1000,
    );
    assert!(audited.is_waiting());
    feed(
        &mut e,
        &mut holder,
        b"{\"ID\":\"q\",\"FileName\":\"x\",\"Action\":\"Unlock\"}\n",
        100,
    );
    audited.withdraw_waits(&mut e);
    let refusals = audited.take_refusals();
    assert_eq!(
        refusals,
        Refusals {
            not_owner: 2,
            bad_payload: 2,
            auth_failed: 0
        }
    );
    let counters = &e.store.counters;
    assert_eq!((counters.not_owner, counters.bad_payload), (3, 2));
    assert!(audited.take_refusals().is_empty(), "taken");
    assert!(holder.take_refusals().is_empty(), "not audited");
}

/// A store replaced wholesale (a follower installing the leader's
/// snapshot) answers the requests parked in the old one `NotOwner`, so the
/// replies behind them go out, and this node's counters carry over.
#[test]
fn replacing_the_store_answers_its_parked_requests() {
    let mut e = session();
    let mut holder = Connection::new(1024, 1);
    let mut waiter = Connection::new(1024, 2);
    feed(
        &mut e,
        &mut holder,
        b"{\"ID\":\"h\",\"FileName\":\"x\",\"Action\":\"Lock\",\"Expire\":9}\n",
        100,
    );
    let pipelined = concat!(
        "{\"ID\":\"w\",\"FileName\":\"x\",\"Action\":\"Lock\",\"Expire\":9,\"Wait\":9}\n",
        "{\"ID\":\"w\",\"FileName\":\"v\",\"Action\":\"Version\"}\n",
    );
    feed(&mut e, &mut waiter, pipelined.as_bytes(), 1000);
    assert!(waiter.is_waiting());
    let requests = e.store.counters.requests_in;
    e.replace_store(Store::new(StoreConfig::unbounded(), T0));
    assert_eq!(e.store.counters.requests_in, requests, "counters carried");
    let mut done = Vec::new();
    e.completions(&mut done);
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].0, done[0].1.granted), (2, None));
    waiter.complete(&mut e, done[0].1);
    let text = String::from_utf8(waiter.unsent().to_vec()).unwrap();
    assert!(
        text.starts_with("{\"Status\":\"NotOwner\"}\n{\"Status\":\"Version\""),
        "{text}"
    );
    assert!(!waiter.is_waiting());
}
