//! The shared test vectors of the table codec (`vectors/table-codec.json`),
//! against the library's codec and against the running server (a vector
//! request goes in encoded, its reply comes back encoded).
//!
//! The vectors are kept in `tests/vectors/`; when the shared copy beside the
//! checkout (`../shared/vectors/`) exists, it must be identical.

mod common;

use jackrabbit_dlm::protocol::codec;
use serde_json::Value;

fn vectors() -> Value {
    let ours = include_str!("vectors/table-codec.json");
    let shared =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors/table-codec.json");
    if let Ok(theirs) = std::fs::read_to_string(&shared) {
        assert_eq!(
            serde_json::from_str::<Value>(&theirs).unwrap(),
            serde_json::from_str::<Value>(ours).unwrap(),
            "tests/vectors/table-codec.json is out of date with {}",
            shared.display()
        );
    }
    serde_json::from_str(ours).expect("vectors are JSON")
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The bytes a valid vector stands for.
fn bytes_of(vector: &Value) -> Vec<u8> {
    match (vector["text"].as_str(), vector["bytes_hex"].as_str()) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(h)) => hex(h),
        _ => panic!("vector without text or bytes_hex: {vector}"),
    }
}

#[test]
fn alphabet_matches() {
    let v = vectors();
    assert_eq!(v["alphabet"].as_str().unwrap().as_bytes(), codec::ALPHABET);
}

#[test]
fn valid_vectors_encode_and_decode() {
    let v = vectors();
    let valid = v["valid"].as_array().unwrap();
    assert!(valid.len() >= 9);
    for vector in valid {
        let bytes = bytes_of(vector);
        let encoded = vector["encoded"].as_str().unwrap();
        assert_eq!(codec::encode(&bytes), encoded, "{vector}");
        assert_eq!(
            codec::decode(encoded.as_bytes()).unwrap(),
            bytes,
            "{vector}"
        );
    }
}

#[test]
fn invalid_vectors_are_refused() {
    let v = vectors();
    for text in v["invalid"].as_array().unwrap() {
        let text = text.as_str().unwrap();
        assert!(codec::decode(text.as_bytes()).is_err(), "{text:?} decoded");
    }
}

#[test]
fn the_server_answers_vector_requests_in_kind() {
    let v = vectors();
    let server = common::TestServer::start();
    let mut client = server.connect();
    // The lock request vector, sent exactly as encoded.
    let lock = v["valid"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| {
            x["text"]
                .as_str()
                .is_some_and(|t| t.contains("\"Action\":\"Lock\""))
        })
        .expect("a Lock vector");
    client.send(format!("{}\n", lock["encoded"].as_str().unwrap()).as_bytes());
    let reply = client.line();
    let plain: Value = serde_json::from_slice(&codec::decode(reply.as_bytes()).unwrap()).unwrap();
    assert_eq!(plain["Status"], "Locked");
    assert_eq!(plain["ID"], "w1");
    // Every invalid vector is an encoded BadPayload, and the connection lives on.
    for text in v["invalid"].as_array().unwrap() {
        client.send(format!("{}\n", text.as_str().unwrap()).as_bytes());
        let reply = client.line();
        assert_eq!(
            codec::decode(reply.as_bytes()).unwrap(),
            br#"{"Status":"BadPayload"}"#
        );
    }
}
