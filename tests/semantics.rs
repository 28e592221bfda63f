//! One test per row of PROTOCOL.md's semantics table, each run in both line
//! encodings (plain JSON and the 78-character table encoding) against the
//! real reactor over TCP, started in-process on a clock the test moves, so
//! TTLs pass without sleeping. (The golden scripts in `tests/scripts/` check
//! the same rows byte for byte through the session layer.)

mod common;

use common::{Client, InProcess, put, request, status, token};
use jackrabbit_dlm::protocol::codec::Encoding;
use jackrabbit_dlm::server::ManualClock;
use jackrabbit_dlm::time::Millis;
use serde_json::Value;

/// A connection that speaks one encoding.
struct Speaker {
    client: Client,
    encoding: Encoding,
    clock: ManualClock,
}

impl Speaker {
    fn call(&mut self, line: &str) -> Value {
        self.client.call_in(self.encoding, line)
    }
    fn lock(&mut self, id: &str, name: &str, expire: &str) -> Value {
        self.call(&request("Lock", id, name, expire))
    }
    fn act(&mut self, action: &str, id: &str, name: &str) -> Value {
        self.call(&request(action, id, name, "0"))
    }
    fn put(&mut self, id: &str, name: &str, data: &str, expire: &str) -> Value {
        self.call(&put(id, name, data, expire))
    }
    /// Lets `ms` milliseconds pass on the server's clock.
    fn pass(&self, ms: u64) {
        self.clock.advance(Millis::new(ms));
    }
}

/// Runs `row` once per encoding, each on its own server and connection.
fn in_both_encodings(row: impl Fn(&mut Speaker)) {
    for encoding in [Encoding::Plain, Encoding::Table] {
        let server = InProcess::start();
        let mut speaker = Speaker {
            client: server.connect(),
            encoding,
            clock: server.clock.clone(),
        };
        row(&mut speaker);
    }
}

#[test]
fn lock_absent_or_expired_gives_a_new_hold() {
    in_both_encodings(|s| {
        let first = s.lock("w1", "jobs", "0.05");
        assert_eq!(status(&first), "Locked");
        assert_eq!(first["ID"], "w1");
        s.pass(50);
        let second = s.lock("w2", "jobs", "30");
        assert_eq!(
            (status(&second), &second["ID"]),
            ("Locked", &Value::from("w2"))
        );
        assert!(token(&second) > token(&first), "new hold, new token");
    });
}

#[test]
fn lock_held_by_same_id_resets_ttl_keeps_token() {
    in_both_encodings(|s| {
        let first = s.lock("w1", "jobs", "0.3");
        s.pass(200);
        let again = s.lock("w1", "jobs", "0.3");
        assert_eq!(
            (status(&again), &again["ID"]),
            ("Locked", &Value::from("w1"))
        );
        assert_eq!(token(&again), token(&first));
        // 0.299 s later the original TTL has passed but the reset one has
        // not; 1 ms later it has too.
        s.pass(299);
        assert_eq!(status(&s.lock("w2", "jobs", "1")), "NotOwner");
        s.pass(1);
        assert_eq!(status(&s.lock("w2", "jobs", "1")), "Locked");
    });
}

#[test]
fn lock_held_by_another_id_is_not_owner() {
    in_both_encodings(|s| {
        s.lock("w1", "jobs", "30");
        let reply = s.lock("w2", "jobs", "30");
        assert_eq!(reply, serde_json::json!({"Status": "NotOwner"}));
    });
}

#[test]
fn unlock_absent_or_expired_is_unlocked() {
    in_both_encodings(|s| {
        assert_eq!(
            s.act("Unlock", "w1", "jobs"),
            serde_json::json!({"Status": "Unlocked"})
        );
        s.lock("w1", "jobs", "0.05");
        s.pass(50);
        assert_eq!(
            s.act("Unlock", "w1", "jobs"),
            serde_json::json!({"Status": "Unlocked"})
        );
    });
}

#[test]
fn unlock_held_by_same_id_releases() {
    in_both_encodings(|s| {
        s.lock("w1", "jobs", "30");
        assert_eq!(
            s.act("Unlock", "w1", "jobs"),
            serde_json::json!({"Status": "Unlocked", "ID": "w1"})
        );
        assert_eq!(status(&s.lock("w2", "jobs", "30")), "Locked");
    });
}

#[test]
fn unlock_held_by_another_id_is_not_owner() {
    in_both_encodings(|s| {
        s.lock("w1", "jobs", "30");
        assert_eq!(
            s.act("Unlock", "w2", "jobs"),
            serde_json::json!({"Status": "NotOwner"})
        );
        assert_eq!(status(&s.act("TestLock", "w1", "jobs")), "Locked");
    });
}

#[test]
fn testlock_absent_or_expired_is_unlocked() {
    in_both_encodings(|s| {
        assert_eq!(
            s.act("TestLock", "w1", "jobs"),
            serde_json::json!({"Status": "Unlocked"})
        );
        s.lock("w1", "jobs", "0.05");
        s.pass(50);
        assert_eq!(
            s.act("TestLock", "w1", "jobs"),
            serde_json::json!({"Status": "Unlocked"})
        );
    });
}

#[test]
fn testlock_held_by_same_id_is_locked_and_changes_nothing() {
    in_both_encodings(|s| {
        let held = s.lock("w1", "jobs", "30");
        assert_eq!(
            s.act("TestLock", "w1", "jobs"),
            serde_json::json!({"Status": "Locked", "ID": "w1"})
        );
        assert_eq!(token(&s.lock("w1", "jobs", "30")), token(&held));
    });
}

#[test]
fn testlock_held_by_another_id_is_not_owner() {
    in_both_encodings(|s| {
        s.lock("w1", "jobs", "30");
        assert_eq!(
            s.act("TestLock", "w2", "jobs"),
            serde_json::json!({"Status": "NotOwner"})
        );
    });
}

#[test]
fn put_absent_or_expired_creates() {
    in_both_encodings(|s| {
        assert_eq!(
            s.put("a", "cfg", "v1", "0.05"),
            serde_json::json!({"Status": "Done", "ID": "a"})
        );
        s.pass(50);
        assert_eq!(
            s.put("b", "cfg", "v2", "30"),
            serde_json::json!({"Status": "Done", "ID": "b"})
        );
        assert_eq!(s.act("Get", "b", "cfg")["DataStore"], "v2");
    });
}

#[test]
fn put_owned_by_same_id_replaces_value_and_ttl() {
    in_both_encodings(|s| {
        s.put("a", "cfg", "v1", "0.3");
        s.pass(200);
        assert_eq!(
            s.put("a", "cfg", "v2", "0.3"),
            serde_json::json!({"Status": "Done", "ID": "a"})
        );
        s.pass(299);
        assert_eq!(s.act("Get", "a", "cfg")["DataStore"], "v2");
        s.pass(1);
        assert_eq!(status(&s.act("Get", "a", "cfg")), "NotFound");
    });
}

#[test]
fn put_owned_by_another_id_is_not_owner() {
    in_both_encodings(|s| {
        s.put("a", "cfg", "v1", "30");
        assert_eq!(
            s.put("b", "cfg", "v2", "30"),
            serde_json::json!({"Status": "NotOwner"})
        );
        assert_eq!(s.act("Get", "a", "cfg")["DataStore"], "v1");
    });
}

#[test]
fn get_absent_or_expired_is_not_found() {
    in_both_encodings(|s| {
        assert_eq!(
            s.act("Get", "a", "cfg"),
            serde_json::json!({"Status": "NotFound"})
        );
        s.put("a", "cfg", "v", "0.05");
        s.pass(50);
        assert_eq!(
            s.act("Get", "a", "cfg"),
            serde_json::json!({"Status": "NotFound"})
        );
    });
}

#[test]
fn get_owned_by_same_id_returns_exactly_what_was_put() {
    in_both_encodings(|s| {
        let value = "quote\" backslash\\ newline\n tab\t nul\u{0} é中😀 </script>";
        s.put("a", "cfg", value, "30");
        assert_eq!(
            s.act("Get", "a", "cfg"),
            serde_json::json!({"Status": "Done", "ID": "a", "DataStore": value})
        );
    });
}

#[test]
fn get_owned_by_another_id_is_not_owner() {
    in_both_encodings(|s| {
        s.put("a", "cfg", "secret", "30");
        assert_eq!(
            s.act("Get", "b", "cfg"),
            serde_json::json!({"Status": "NotOwner"})
        );
    });
}

#[test]
fn erase_absent_or_expired_is_not_found() {
    in_both_encodings(|s| {
        assert_eq!(
            s.act("Erase", "a", "cfg"),
            serde_json::json!({"Status": "NotFound"})
        );
        s.put("a", "cfg", "v", "0.05");
        s.pass(50);
        assert_eq!(
            s.act("Erase", "a", "cfg"),
            serde_json::json!({"Status": "NotFound"})
        );
    });
}

#[test]
fn erase_owned_by_same_id_removes() {
    in_both_encodings(|s| {
        s.put("a", "cfg", "v", "30");
        assert_eq!(
            s.act("Erase", "a", "cfg"),
            serde_json::json!({"Status": "Done", "ID": "a"})
        );
        assert_eq!(status(&s.act("Get", "a", "cfg")), "NotFound");
    });
}

#[test]
fn erase_owned_by_another_id_is_not_owner() {
    in_both_encodings(|s| {
        s.put("a", "cfg", "v", "30");
        assert_eq!(
            s.act("Erase", "b", "cfg"),
            serde_json::json!({"Status": "NotOwner"})
        );
        assert_eq!(status(&s.act("Get", "a", "cfg")), "Done");
    });
}

#[test]
fn version_names_jackrabbit_dlm() {
    in_both_encodings(|s| {
        let reply = s.act("Version", "a", "x");
        assert_eq!(status(&reply), "Version");
        let id = reply["ID"].as_str().expect("ID");
        assert!(id.contains("JackrabbitDLM"), "{id}");
        assert_eq!(id, format!("JackrabbitDLM/{}", env!("CARGO_PKG_VERSION")));
    });
}

#[test]
fn locks_and_data_items_are_separate_namespaces() {
    in_both_encodings(|s| {
        s.lock("a", "x", "30");
        assert_eq!(status(&s.act("Get", "a", "x")), "NotFound");
        assert_eq!(status(&s.put("b", "x", "v", "30")), "Done");
        assert_eq!(status(&s.act("TestLock", "a", "x")), "Locked");
    });
}

#[test]
fn action_names_are_case_insensitive() {
    in_both_encodings(|s| {
        assert_eq!(status(&s.call(&request("lOcK", "a", "x", "30"))), "Locked");
        assert_eq!(
            status(&s.call(&request("UNLOCK", "a", "x", "0"))),
            "Unlocked"
        );
    });
}

#[test]
fn unknown_action_is_bad_action() {
    in_both_encodings(|s| {
        assert_eq!(
            s.act("Steal", "a", "x"),
            serde_json::json!({"Status": "BadAction"})
        );
        assert_eq!(status(&s.act("Version", "a", "x")), "Version");
    });
}

#[test]
fn stats_reports_counts_only() {
    in_both_encodings(|s| {
        s.lock("a", "x", "30");
        s.put("a", "y", "private-value", "30");
        let stats = s.act("Stats", "a", "x");
        assert_eq!(status(&stats), "Stats");
        assert_eq!(stats["ALock"], 1);
        assert_eq!(stats["AData"], 1);
        assert_eq!(stats["Lock"], 1);
        assert_eq!(stats["PutNew"], 1);
        let text = stats.to_string();
        assert!(!text.contains("private-value") && !text.contains("\"x\""));
    });
}

#[test]
fn old_clients_fields_are_accepted() {
    in_both_encodings(|s| {
        // The older Python client sends Name, Identity, Expire "0" and DataStore null.
        let line = r#"{"Name":"host","Identity":"pid","ID":"a","FileName":"x","Action":"TestLock","Expire":"0","DataStore":null}"#;
        assert_eq!(status(&s.call(line)), "Unlocked");
    });
}
