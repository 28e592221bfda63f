//! Dependencies by need: a program that depends on this crate for the
//! client alone (`default-features = false, features = ["client"]`) builds
//! none of the server's, the command lines' or lockfight's crates.
//!
//! Checked on Cargo's own resolution of the features, `cargo tree -e normal`,
//! so a dependency that a later change makes unconditional, or adds to the
//! `client` feature, fails here.

use std::process::Command;

/// Crates that the client must never pull in, directly or through another
/// crate: the reactor's, the request parser's, the command lines' and
/// lockfight's.
const NOT_FOR_THE_CLIENT: &[&str] = &[
    "mio",
    "simd-json",
    "signal-hook",
    "signal-hook-mio",
    "slab",
    "hashbrown",
    "memchr",
    "log",
    "clap",
    "plotters",
    "serde",
    "serde_json",
];

/// The names of the crates in `cargo tree -e normal` with `features`.
fn normal_dependencies(features: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let output = Command::new(cargo)
        .args([
            "tree",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--manifest-path",
            manifest,
        ])
        .args(features)
        .output()
        .expect("run cargo tree");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut names: Vec<String> = String::from_utf8(output.stdout)
        .expect("cargo tree prints UTF-8")
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_client_alone_builds_none_of_the_servers_or_tools_crates() {
    let names = normal_dependencies(&["--no-default-features", "--features", "client"]);
    for wanted in ["jackrabbit-dlm", "base64", "getrandom", "miniserde"] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted} missing: {names:?}"
        );
    }
    let banned: Vec<&String> = names
        .iter()
        .filter(|n| NOT_FOR_THE_CLIENT.contains(&n.as_str()))
        .collect();
    assert!(banned.is_empty(), "the client pulls in {banned:?}");
}

#[test]
fn the_default_build_has_everything() {
    // The same reading of the same command finds each of them when every
    // feature is on: the check above could see them if they were there.
    let names = normal_dependencies(&[]);
    for crate_name in NOT_FOR_THE_CLIENT {
        assert!(
            names.iter().any(|n| n == crate_name),
            "{crate_name} missing from the default build: {names:?}"
        );
    }
}

#[test]
fn tokio_is_only_ever_the_async_clients() {
    // Neither the default build nor the server alone has tokio in it.
    for features in [&[][..], &["--no-default-features", "--features", "server"]] {
        let names = normal_dependencies(features);
        assert!(
            !names.iter().any(|n| n == "tokio"),
            "tokio in the build with {features:?}"
        );
    }
    // The async client has it, and still none of the server's or tools'
    // crates but the socket layer tokio itself stands on (mio).
    let names = normal_dependencies(&["--no-default-features", "--features", "tokio"]);
    assert!(names.iter().any(|n| n == "tokio"), "{names:?}");
    let banned: Vec<&String> = names
        .iter()
        .filter(|n| n.as_str() != "mio" && NOT_FOR_THE_CLIENT.contains(&n.as_str()))
        .collect();
    assert!(banned.is_empty(), "the async client pulls in {banned:?}");
}
