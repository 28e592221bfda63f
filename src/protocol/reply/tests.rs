//! The reply writer: exact bytes, escapes, JSON round trips.

use super::*;

fn json(reply: Reply<'_>) -> String {
    let mut out = Vec::new();
    reply.write_json(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn protocol_examples() {
    assert_eq!(
        json(Reply::Locked {
            id: "w1",
            token: FencingToken::new(1764129000000017)
        }),
        r#"{"Status":"Locked","ID":"w1","Token":1764129000000017}"#
    );
    assert_eq!(
        json(Reply::Bare(Status::NotOwner)),
        r#"{"Status":"NotOwner"}"#
    );
    assert_eq!(
        json(Reply::Value {
            id: "w1",
            data: "aGVsbG8="
        }),
        r#"{"Status":"Done","ID":"w1","DataStore":"aGVsbG8="}"#
    );
    assert_eq!(
        json(Reply::Version),
        format!(
            r#"{{"Status":"Version","ID":"JackrabbitDLM/{}"}}"#,
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(json(Reply::Bare(Status::No)), r#"{"Status":"NO"}"#);
}

#[test]
fn strings_survive_a_json_round_trip() {
    let nasty = "q\"b\\s\n\r\t\u{0}\u{1f}\u{7f}é中😀/";
    let text = json(Reply::Value {
        id: nasty,
        data: nasty,
    });
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed["ID"], nasty);
    assert_eq!(parsed["DataStore"], nasty);
}

proptest::proptest! {
    /// Escapes are found wherever they fall: in a whole eight-byte word,
    /// in the padded tail, or right at a word boundary.
    #[test]
    fn any_string_survives_a_json_round_trip(
        prefix in "[a-z0-9]{0,20}",
        nasty in proptest::sample::select(vec!["", "\"", "\\", "\n", "\u{1}", "\u{1f}", "é"]),
        suffix in "\\PC{0,12}",
    ) {
        let s = format!("{prefix}{nasty}{suffix}");
        let mut out = Vec::new();
        write_json_string(&mut out, &s);
        let back: String = serde_json::from_slice(&out).unwrap();
        proptest::prop_assert_eq!(back, s);
    }
}

#[test]
fn stats_reply_is_json_with_every_counter() {
    let counters = Counters {
        lock: 3,
        ..Counters::default()
    };
    let parsed: serde_json::Value = serde_json::from_str(&json(Reply::Stats(&counters))).unwrap();
    assert_eq!(parsed["Status"], "Stats");
    assert_eq!(parsed["Lock"], 3);
    assert_eq!(parsed["NotOwner"], 0);
    // Integers, except MemoryMax: two decimals, as a JSON number.
    assert!(json(Reply::Stats(&counters)).contains(r#""MemoryMax":0.00,"#));
    for (hundredths, shown) in [
        (125, "1.25"),
        (7, "0.07"),
        (10_000, "100.00"),
        (1030, "10.30"),
    ] {
        let counters = Counters {
            memory_max: hundredths,
            ..Counters::default()
        };
        let line = json(Reply::Stats(&counters));
        assert!(line.contains(&format!(r#""MemoryMax":{shown},"#)), "{line}");
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["MemoryMax"].as_f64(), shown.parse::<f64>().ok());
    }
}

#[test]
fn escape_detection_agrees_with_the_byte_rule() {
    for b in 0..=255u8 {
        for pos in 0..8 {
            let mut chunk = [b'a'; 8];
            chunk[pos] = b;
            assert_eq!(
                chunk_needs_escape(u64::from_le_bytes(chunk)),
                needs_escape(b),
                "byte {b} at {pos}"
            );
        }
    }
    // Every length and position of a byte to escape, through the writer,
    // on both sides of the short-string path's bounds.
    for len in 0..SHORT_STRING + 16 {
        for pos in 0..len {
            let mut text = vec![b'x'; len];
            text[pos] = b'"';
            let s = String::from_utf8(text).unwrap();
            let mut out = Vec::new();
            write_json_string(&mut out, &s);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, s);
        }
    }
}

#[test]
fn clean_strings_are_copied_whole_at_every_length() {
    let text: String = ('a'..='z').cycle().take(SHORT_STRING + 16).collect();
    for len in 0..text.len() {
        let mut out = b"prefix".to_vec();
        write_json_string(&mut out, &text[..len]);
        assert_eq!(out, format!("prefix\"{}\"", &text[..len]).as_bytes());
    }
}

#[test]
fn a_line_is_the_object_and_a_newline() {
    for reply in [
        Reply::Bare(Status::BadPayload),
        Reply::WithId(Status::Unlocked, "owner-with-a-long-id"),
        Reply::Locked {
            id: "w1",
            token: FencingToken::new(42),
        },
        Reply::Value {
            id: "w\"1",
            data: "x",
        },
    ] {
        let mut line = Vec::new();
        reply.write_line(&mut line);
        assert_eq!(line, format!("{}\n", json(reply)).as_bytes());
    }
}

#[test]
fn numbers() {
    for n in [0, 9, 10, 9_999_999, 10_000_000, 1234567890, u64::MAX] {
        let mut out = Vec::new();
        write_u64(&mut out, n);
        assert_eq!(out, n.to_string().as_bytes());
    }
}

#[test]
fn statuses_round_trip_their_wire_names() {
    for s in [
        "Locked",
        "Unlocked",
        "NotOwner",
        "Done",
        "NotFound",
        "Version",
        "Stats",
        "BadPayload",
        "BadAction",
        "NO",
    ] {
        assert_eq!(Status::from_wire(s).map(Status::as_str), Some(s));
    }
}
