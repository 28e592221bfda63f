//! The parser against PROTOCOL.md's field rules.

use super::*;

const MAX_TTL_MS: u64 = 86_400_000;

fn parse(text: &str) -> Result<(Action, String, String, u64, u64, String), ParseError> {
    let mut parser = Parser::new(MAX_TTL_MS);
    let mut buf = text.as_bytes().to_vec();
    let len = buf.len();
    buf.resize(len + PADDING, b' ');
    parser.parse(&mut buf, len).map(|r| {
        (
            r.action(),
            r.id().to_string(),
            r.name().to_string(),
            r.expire().as_ms(),
            r.wait().as_ms(),
            r.data().to_string(),
        )
    })
}

fn bad(text: &str) -> bool {
    matches!(parse(text), Err(ParseError::BadPayload(_)))
}

#[test]
fn plain_lock() {
    let (action, id, name, expire, wait, _) =
        parse(r#"{"ID":"w1","FileName":"jobs","Action":"Lock","Expire":"30"}"#).unwrap();
    assert_eq!(
        (action, id.as_str(), name.as_str()),
        (Action::Lock, "w1", "jobs")
    );
    assert_eq!((expire, wait), (30_000, 0));
}

#[test]
fn action_is_case_insensitive_and_keys_are_not() {
    assert_eq!(
        parse(r#"{"ID":"a","FileName":"f","Action":"tEsTlOcK"}"#)
            .unwrap()
            .0,
        Action::TestLock
    );
    assert!(bad(r#"{"id":"a","FileName":"f","Action":"TestLock"}"#));
}

#[test]
fn expire_forms() {
    let ms = |e: &str| {
        parse(&format!(
            r#"{{"ID":"a","FileName":"f","Action":"Lock","Expire":{e}}}"#
        ))
        .map(|r| r.3)
    };
    assert_eq!(ms(r#""0.25""#), Ok(250));
    assert_eq!(ms("7"), Ok(7000));
    assert_eq!(ms("1.5"), Ok(1500));
    assert_eq!(ms(r#""0.0001""#), Ok(1));
    assert_eq!(ms(r#"" 2 ""#), Ok(2000));
    assert_eq!(ms(r#""86400""#), Ok(86_400_000));
    // Zero or less is no time at all: granted, and over at once.
    for e in [r#""-1""#, r#""0""#, "0", "-3", "-0.5", r#""-86401""#] {
        assert_eq!(ms(e), Ok(0), "{e}");
    }
    for e in [
        r#""abc""#,
        r#""-inf""#,
        r#""inf""#,
        r#""nan""#,
        r#""1e999""#,
        "1e999",
        r#""86401""#,
        "null",
        "true",
        "[]",
        "{}",
        r#""""#,
    ] {
        assert!(matches!(ms(e), Err(ParseError::BadPayload(_))), "{e}");
    }
}

#[test]
fn expire_is_required_for_lock_and_put_only() {
    assert!(bad(r#"{"ID":"a","FileName":"f","Action":"Lock"}"#));
    assert!(bad(
        r#"{"ID":"a","FileName":"f","Action":"Put","DataStore":"x"}"#
    ));
    assert!(parse(r#"{"ID":"a","FileName":"f","Action":"Unlock","Expire":"abc"}"#).is_ok());
    assert!(parse(r#"{"ID":"a","FileName":"f","Action":"Get","Expire":"0"}"#).is_ok());
}

#[test]
fn datastore_rules() {
    let put =
        parse(r#"{"ID":"a","FileName":"f","Action":"Put","Expire":1,"DataStore":"a\"b\\c\u00e9"}"#)
            .unwrap();
    assert_eq!(put.5, "a\"b\\cé");
    assert!(bad(
        r#"{"ID":"a","FileName":"f","Action":"Put","Expire":1,"DataStore":5}"#
    ));
    assert!(bad(
        r#"{"ID":"a","FileName":"f","Action":"Put","Expire":1,"DataStore":null}"#
    ));
    // Old clients send DataStore null with every other action.
    assert!(parse(r#"{"ID":"a","FileName":"f","Action":"Get","DataStore":null}"#).is_ok());
    assert!(parse(r#"{"ID":"a","FileName":"f","Action":"Get","DataStore":[1,{"x":2}]}"#).is_ok());
}

#[test]
fn id_and_file_name_rules() {
    // The empty string is an ID (and a name) like any other.
    let (_, id, name, ..) = parse(r#"{"ID":"","FileName":"","Action":"Get"}"#).unwrap();
    assert_eq!((id.as_str(), name.as_str()), ("", ""));
    assert!(bad(r#"{"ID":null,"FileName":"f","Action":"Get"}"#));
    assert!(bad(r#"{"ID":["a"],"FileName":"f","Action":"Get"}"#));
    assert!(bad(r#"{"ID":"a","FileName":true,"Action":"Get"}"#));
    assert!(bad(r#"{"FileName":"f","Action":"Get"}"#));
    assert!(bad(r#"{"ID":"a","Action":"Get"}"#));
    let long_id = "i".repeat(MAX_ID);
    assert!(
        parse(&format!(
            r#"{{"ID":"{long_id}","FileName":"f","Action":"Get"}}"#
        ))
        .is_ok()
    );
    assert!(bad(&format!(
        r#"{{"ID":"{long_id}x","FileName":"f","Action":"Get"}}"#
    )));
    let long_name = "n".repeat(MAX_FILE_NAME);
    assert!(
        parse(&format!(
            r#"{{"ID":"a","FileName":"{long_name}","Action":"Get"}}"#
        ))
        .is_ok()
    );
    assert!(bad(&format!(
        r#"{{"ID":"a","FileName":"{long_name}n","Action":"Get"}}"#
    )));
}

#[test]
fn built_requests_follow_the_parsers_length_rules() {
    let long_id = "é".repeat(MAX_ID / 2 + 1);
    assert!(Request::new(Action::Lock, &long_id, "f").is_err());
    assert!(Request::new(Action::Lock, "", "").is_ok());
    let long_name = "n".repeat(MAX_FILE_NAME + 1);
    assert!(Request::new(Action::Lock, "a", &long_name).is_err());
    let ok = Request::new(Action::Put, "a", "f")
        .unwrap()
        .with_expire(Millis::new(5))
        .with_data("v");
    assert_eq!(
        (ok.id(), ok.name(), ok.expire(), ok.data()),
        ("a", "f", Millis::new(5), "v")
    );
}

#[test]
fn unknown_keys_are_ignored_and_known_duplicates_refused() {
    assert!(
        parse(r#"{"Name":"x","Identity":{"a":[1,2]},"ID":"a","FileName":"f","Action":"Version"}"#)
            .is_ok()
    );
    assert!(bad(
        r#"{"ID":"a","ID":"b","FileName":"f","Action":"Version"}"#
    ));
}

#[test]
fn bad_action_versus_bad_payload() {
    assert_eq!(
        parse(r#"{"ID":"a","FileName":"f","Action":"Steal"}"#),
        Err(ParseError::BadAction)
    );
    assert!(bad(r#"{"ID":"a","FileName":"f","Action":3}"#));
    assert!(bad(r#"{"ID":"a","FileName":"f"}"#));
}

#[test]
fn not_json_or_not_an_object() {
    for text in [
        "{",
        "{}x",
        "[1]",
        "\"s\"",
        "{\"ID\":\"a\",}",
        "nul",
        "{\"a\":\"\u{7f}\"",
    ] {
        assert!(bad(text), "{text}");
    }
    let deep = format!("{{\"x\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(bad(&deep));
}

#[test]
fn wait_rules() {
    let wait = |w: &str| {
        parse(&format!(
            r#"{{"ID":"a","FileName":"f","Action":"Lock","Expire":1,"Wait":{w}}}"#
        ))
        .map(|r| r.4)
    };
    assert_eq!(wait(r#""2""#), Ok(2000));
    assert_eq!(wait(r#""0""#), Ok(0));
    assert_eq!(wait("0.5"), Ok(500));
    for w in [
        r#""-1""#,
        r#""nan""#,
        r#""inf""#,
        r#""x""#,
        r#""86401""#,
        "null",
    ] {
        assert!(matches!(wait(w), Err(ParseError::BadPayload(_))), "{w}");
    }
}

#[test]
fn padding_bytes_are_left_untouched() {
    let mut parser = Parser::new(MAX_TTL_MS);
    let line = br#"{"ID":"a\n","FileName":"f","Action":"Get"}"#;
    let mut buf = line.to_vec();
    let tail: Vec<u8> = (0..=255u8).cycle().take(PADDING).collect();
    buf.extend_from_slice(&tail);
    let len = line.len();
    parser.parse(&mut buf, len).unwrap();
    assert_eq!(&buf[len..], &tail[..]);
}

/// The integer path for whole seconds gives what the general
/// floating-point path gives (a JSON float never takes the integer
/// path), at and around every boundary.
#[test]
fn whole_seconds_agree_with_the_general_path() {
    for secs in [
        0u64,
        1,
        2,
        59,
        86_399,
        86_400,
        86_401,
        999_999_999,
        10_000_000_000,
    ] {
        let general = Node::Static(StaticNode::F64(secs as f64));
        let text = secs.to_string();
        let padded = format!(" {secs} ");
        let nodes = [
            Node::String(&text),
            Node::String(&padded),
            Node::Static(StaticNode::U64(secs)),
            Node::Static(StaticNode::I64(secs as i64)),
        ];
        for node in nodes {
            assert_eq!(
                ttl_ms(Some(node), MAX_TTL_MS),
                ttl_ms(Some(general), MAX_TTL_MS),
                "Expire {node:?}"
            );
            assert_eq!(
                wait_ms(node, MAX_TTL_MS),
                wait_ms(general, MAX_TTL_MS),
                "Wait {node:?}"
            );
        }
    }
    assert_eq!(ttl_ms(Some(Node::String("10")), MAX_TTL_MS), Ok(10_000));
    assert_eq!(ttl_ms(Some(Node::String("0010")), MAX_TTL_MS), Ok(10_000));
    assert_eq!(
        ttl_ms(Some(Node::Static(StaticNode::I64(-5))), MAX_TTL_MS),
        Ok(0)
    );
    assert_eq!(wait_ms(Node::Static(StaticNode::U64(0)), MAX_TTL_MS), Ok(0));
}

/// PROTOCOL.md, Request fields: a JSON number as ID or FileName is its
/// decimal text: an integer as written, any other number in its shortest
/// round-trip form (as Python writes it, since upstream reads it so).
#[test]
fn numbers_as_id_and_file_name_are_their_text() {
    let text = |id: &str, name: &str| {
        let (_, id, name, ..) = parse(&format!(
            r#"{{"ID":{id},"FileName":{name},"Action":"Get"}}"#
        ))
        .unwrap();
        (id, name)
    };
    assert_eq!(text("7", "42"), ("7".into(), "42".into()));
    assert_eq!(text("-12", "0"), ("-12".into(), "0".into()));
    assert_eq!(
        text("18446744073709551615", "-9223372036854775808"),
        ("18446744073709551615".into(), "-9223372036854775808".into())
    );
    assert_eq!(text("1.5", "0.1"), ("1.5".into(), "0.1".into()));
    assert_eq!(text("1e3", "2.50"), ("1000.0".into(), "2.5".into()));
    assert_eq!(text("1e22", "1.5e-7"), ("1e+22".into(), "1.5e-07".into()));
    assert_eq!(
        text("1e16", "1e15"),
        ("1e+16".into(), "1000000000000000.0".into())
    );
    assert_eq!(text("0.0001", "0.00001"), ("0.0001".into(), "1e-05".into()));
    assert_eq!(text("\"7\"", "7"), ("7".into(), "7".into()));
}

#[test]
fn name_and_identity_are_read_as_sent() {
    let mut parser = Parser::new(MAX_TTL_MS);
    let mut credentials = |line: &str| {
        let mut buf = line.as_bytes().to_vec();
        let len = buf.len();
        buf.resize(len + PADDING, b' ');
        let c = parser
            .parse(&mut buf, len)
            .map(|r| format!("{:?}", r.credentials()));
        c.unwrap()
    };
    assert_eq!(
        credentials(r#"{"ID":"a","FileName":"f","Action":"Get"}"#),
        "Anonymous"
    );
    assert_eq!(
        credentials(r#"{"ID":"a","FileName":"f","Action":"Get","Name":"n","Identity":"s"}"#),
        r#"Claimed { name: "n", identity: Some("s") }"#
    );
    assert_eq!(
        credentials(r#"{"ID":"a","FileName":"f","Action":"Get","Name":"n","Identity":5}"#),
        r#"Claimed { name: "n", identity: None }"#
    );
    assert_eq!(
        credentials(r#"{"ID":"a","FileName":"f","Action":"Get","Name":3}"#),
        "Malformed"
    );
}
