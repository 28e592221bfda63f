//! What the metrics port answers: the exposition of a [`View`], and the
//! health checks.

use super::exposition::{CONTENT_TYPE, Exposition, Kind, snake_case};
use super::http::{self, Parsed, Route};
use super::{BOUNDS_NS, CODES, ClusterView, Own, Role, View};

const PREFIX: &str = "jackrabbit_dlm_";

/// PROTOCOL.md counters shown as gauges: current values, not totals.
/// `ALock` and `AData` are left out: they are `jackrabbit_dlm_locks` and
/// `jackrabbit_dlm_items`, read from the store itself.
const GAUGES: [&str; 1] = ["MemoryMax"];
const SKIPPED: [&str; 2] = ["ALock", "AData"];

/// Counters whose snake-case name would not say what they count.
const RENAMED: [(&str, &str); 4] = [
    ("In", "requests"),
    ("Out", "replies"),
    ("NO", "memory_refused"),
    ("MemoryMax", "memory_max_percent"),
];

/// The HTTP status and the whole response to `parsed`.
pub(super) fn answer(parsed: Parsed, view: &View<'_>, own: &Own<'_>) -> (u16, Vec<u8>) {
    let Parsed::Request { route, head_only } = parsed else {
        let code = match parsed {
            Parsed::NotFound { .. } => 404,
            Parsed::MethodNotAllowed => 405,
            _ => 400,
        };
        return (code, http::error_response(parsed));
    };
    let plain = "text/plain; charset=utf-8";
    match route {
        Route::Livez => (200, http::response(200, plain, "ok\n", head_only)),
        Route::Readyz if ready(view) => (200, http::response(200, plain, "ready\n", head_only)),
        Route::Readyz => (503, http::response(503, plain, "not ready\n", head_only)),
        Route::Metrics => {
            let body = exposition(view, own);
            (200, http::response(200, CONTENT_TYPE, &body, head_only))
        }
    }
}

/// Ready to answer requests: listening, and in a cluster a leader is known.
fn ready(view: &View<'_>) -> bool {
    view.listening && view.cluster.is_none_or(|c| c.leader_known)
}

/// `GET /metrics`.
fn exposition(view: &View<'_>, own: &Own<'_>) -> String {
    let mut page = Exposition::new();
    let name = |s: &str| format!("{PREFIX}{s}");

    page.family(
        &name("build_info"),
        Kind::Gauge,
        "The server's version, as a label; always 1",
    );
    page.sample(
        &name("build_info"),
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    page.single(
        &name("start_time_seconds"),
        Kind::Gauge,
        "When the server started, in seconds since the Unix epoch",
        own.started,
    );
    page.single(
        &name("ready"),
        Kind::Gauge,
        "1 when the server can answer requests (what /readyz says)",
        u8::from(ready(view)),
    );

    // Every PROTOCOL.md counter, totals since start.
    for (protocol, value) in view.counters.fields() {
        if SKIPPED.contains(&protocol) {
            continue;
        }
        let base = RENAMED
            .iter()
            .find(|(from, _)| *from == protocol)
            .map_or_else(|| snake_case(protocol), |(_, to)| (*to).to_owned());
        let help = format!("{} (PROTOCOL.md counter {protocol})", describe(protocol));
        if GAUGES.contains(&protocol) {
            page.single(&name(&base), Kind::Gauge, &help, value);
        } else {
            page.single(&name(&format!("{base}_total")), Kind::Counter, &help, value);
        }
    }

    // The store and the connections now.
    for (metric, help, value) in [
        ("locks", "Locks held now", to_u64(view.locks)),
        ("items", "Data items stored now", to_u64(view.items)),
        (
            "waiters",
            "Requests waiting in lock queues now (Lock with Wait)",
            to_u64(view.waiters),
        ),
        (
            "connections",
            "Lock-port connections open now",
            to_u64(view.connections),
        ),
        (
            "connections_max",
            "Most lock-port connections (--max-connections)",
            to_u64(view.max_connections),
        ),
        (
            "memory_held_bytes",
            "Bytes the memory guard counts as held by locks, items and waiters",
            view.bytes_held,
        ),
        (
            "memory_limit_bytes",
            "The memory guard's cap (--max-memory); past it Lock and Put answer NO",
            view.max_bytes,
        ),
    ] {
        page.single(&name(metric), Kind::Gauge, help, value);
    }

    let seconds: Vec<f64> = BOUNDS_NS.iter().map(|&ns| ns as f64 / 1e9).collect();
    page.histogram(
        &name("request_duration_seconds"),
        "Time requests spent in the server: each event-loop turn's duration, from wake-up to \
         the end of writing its replies, counted once per request answered in it",
        &seconds,
        &own.latency.counts,
        own.latency.sum_ns as f64 / 1e9,
    );

    cluster(&mut page, view.cluster.as_ref());

    // The metrics port itself.
    page.family(
        &name("metrics_port_answers_total"),
        Kind::Counter,
        "Answers of the metrics port, by HTTP status code",
    );
    for (code, &count) in CODES.iter().zip(&own.port.answers) {
        page.sample(
            &name("metrics_port_answers_total"),
            &[("code", &code.to_string())],
            count,
        );
    }
    page.single(
        &name("metrics_port_refused_total"),
        Kind::Counter,
        "Metrics-port connections closed at once: past --metrics-max-connections",
        own.port.refused,
    );
    page.single(
        &name("metrics_port_timed_out_total"),
        Kind::Counter,
        "Metrics-port connections closed by --metrics-timeout",
        own.port.timed_out,
    );
    page.single(
        &name("metrics_port_connections"),
        Kind::Gauge,
        "Metrics-port connections open now",
        to_u64(own.connections),
    );
    page.into_string()
}

/// A cluster member's state, when there is a cluster; nothing otherwise.
/// The role is a state set (one gauge per role, 1 for the current one).
fn cluster(page: &mut Exposition, cluster: Option<&ClusterView>) {
    let Some(c) = cluster else {
        return;
    };
    let role = format!("{PREFIX}cluster_role");
    page.family(&role, Kind::Gauge, "1 for this member's current role");
    for r in Role::ALL {
        page.sample(&role, &[("role", r.as_str())], u8::from(r == c.role));
    }
    for (metric, help, value) in [
        ("cluster_term", "The current term", c.term),
        (
            "cluster_leader_known",
            "1 when a leader is known",
            u64::from(c.leader_known),
        ),
        (
            "cluster_commit_index",
            "The highest log index known committed",
            c.commit_index,
        ),
        (
            "cluster_applied_index",
            "The highest log index applied to the store",
            c.applied_index,
        ),
    ] {
        page.single(&format!("{PREFIX}{metric}"), Kind::Gauge, help, value);
    }
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// What a PROTOCOL.md counter counts, for `# HELP`.
fn describe(protocol: &str) -> &'static str {
    match protocol {
        "Lock" => "Locks taken",
        "Relock" => "Locks renewed by their holder",
        "Unlock" => "Locks released",
        "UnlockNF" => "Unlocks of a lock that was not held",
        "TestLock" => "TestLock requests answered for the holder",
        "TestLockNF" => "TestLock requests on a free lock",
        "NotOwner" => "Requests refused: the lock or item is another ID's",
        "PutNew" => "Data items stored new",
        "PutUpdate" => "Data items stored over an existing one",
        "Get" => "Data items read",
        "GetNF" => "Gets of an absent item",
        "Erased" => "Data items erased",
        "EraseNF" => "Erases of an absent item",
        "DataIn" => "Bytes of DataStore received",
        "DataOut" => "Bytes of DataStore sent",
        "BadPayload" => "Requests answered BadPayload",
        "BadAction" => "Requests answered BadAction",
        "DataOverrun" => "Lines over --max-line (answered BadPayload and discarded)",
        "AuthFailed" => "Requests refused for their identity",
        "ExpiredLock" => "Locks that expired",
        "ExpiredData" => "Data items that expired",
        "Connections" => "Lock-port connections accepted",
        "BadConn" => "Connections ended by an error or reset",
        "In" => "Requests read",
        "Out" => "Replies written",
        "ForcedGC" => "Compactions of tables and buffers",
        "Idle" => "30-second spans in which no request arrived",
        "MemoryOverloadCheck" | "NO" => "Requests refused by the memory guard",
        "MemoryMax" => "Highest resident memory seen since start, percent of physical memory",
        "Waited" => "Waiting Locks granted after waiting",
        "WaitTimeout" => "Waiting Locks whose Wait ran out",
        "Refused" => "Connections closed at once: past --max-connections",
        _ => "A server counter",
    }
}
