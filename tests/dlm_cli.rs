//! The `dlm` command line against the real server: output, exit statuses
//! and their one-line messages, and `dlm run`.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

use common::TestServer;

const DLM: &str = env!("CARGO_BIN_EXE_dlm");

/// `dlm --port PORT ARGS...`, with no `$DLM_ID` from the environment.
fn dlm_command(port: u16, args: &[&str]) -> Command {
    let mut command = Command::new(DLM);
    command
        .env_remove("DLM_ID")
        .arg("--port")
        .arg(port.to_string())
        .args(args);
    command
}

fn dlm(server: &TestServer, args: &[&str]) -> Output {
    dlm_command(server.addr.port(), args).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the exit status, and that a failure says why in one line.
#[track_caller]
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout {:?} stderr {:?}",
        stdout(output),
        stderr(output)
    );
    if code != 0 {
        let message = stderr(output);
        assert_eq!(
            message.lines().count(),
            1,
            "one line on stderr: {message:?}"
        );
        assert!(message.starts_with("dlm: "), "{message:?}");
    }
}

#[test]
fn lock_unlock_test_exit_statuses() {
    let server = TestServer::start();
    let a = ["--id", "a"];
    let b = ["--id", "b"];
    let with = |id: [&str; 2], args: &[&str]| dlm(&server, &[&id[..], args].concat());

    let locked = with(a, &["lock", "jobs", "--expire", "30"]);
    assert_exit(&locked, 0);
    assert!(
        stdout(&locked).starts_with("Locked jobs (token "),
        "{}",
        stdout(&locked)
    );

    let refused = with(b, &["lock", "jobs", "--expire", "30"]);
    assert_exit(&refused, 1);
    assert!(stderr(&refused).contains("owned by another ID"));

    assert_exit(&with(a, &["test", "jobs"]), 0);
    let theirs = with(b, &["test", "jobs"]);
    assert_exit(&theirs, 1);
    assert!(stderr(&theirs).contains("locked by another ID"));
    assert_exit(&with(b, &["unlock", "jobs"]), 1);
    assert_exit(&with(a, &["unlock", "jobs"]), 0);
    let absent = with(a, &["unlock", "jobs"]);
    assert_exit(&absent, 1);
    assert!(stderr(&absent).contains("was not locked"));
    assert_exit(&with(b, &["test", "jobs"]), 1);
}

#[test]
fn data_commands_and_json_output() {
    let server = TestServer::start();
    let mut put = dlm_command(
        server.addr.port(),
        &["--id", "a", "put", "cfg", "-", "--expire", "30"],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    put.stdin
        .take()
        .unwrap()
        .write_all(b"line one\nline \"two\"\n")
        .unwrap();
    assert_exit(&put.wait_with_output().unwrap(), 0);

    let got = dlm(&server, &["--id", "a", "get", "cfg"]);
    assert_exit(&got, 0);
    assert_eq!(got.stdout, b"line one\nline \"two\"\n", "byte for byte");

    let got = dlm(&server, &["--id", "a", "--json", "--encoded", "get", "cfg"]);
    assert_exit(&got, 0);
    let json: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(json["Status"], "Done");
    assert_eq!(json["Value"], "line one\nline \"two\"\n");

    assert_exit(
        &dlm(&server, &["--id", "b", "put", "cfg", "x", "--expire", "30"]),
        1,
    );
    assert_exit(&dlm(&server, &["--id", "b", "get", "cfg"]), 1);
    assert_exit(&dlm(&server, &["--id", "b", "erase", "cfg"]), 1);
    assert_exit(&dlm(&server, &["--id", "a", "erase", "cfg"]), 0);
    let absent = dlm(&server, &["--id", "a", "--json", "get", "cfg"]);
    assert_exit(&absent, 1);
    let json: serde_json::Value = serde_json::from_slice(&absent.stdout).unwrap();
    assert_eq!(json["Status"], "NotFound");
    assert_exit(&dlm(&server, &["--id", "a", "erase", "cfg"]), 1);

    let locked = dlm(&server, &["--json", "lock", "j", "--expire", "0.5"]);
    assert_exit(&locked, 0);
    let json: serde_json::Value = serde_json::from_slice(&locked.stdout).unwrap();
    assert_eq!(json["Status"], "Locked");
    assert!(json["Token"].as_u64().is_some());
    assert!(
        json["ID"].as_str().is_some_and(|id| id.len() >= 37),
        "a random ID: {json}"
    );
}

#[test]
fn dlm_id_comes_from_the_environment() {
    let server = TestServer::start();
    let run = |id: &str, args: &[&str]| {
        dlm_command(server.addr.port(), args)
            .env("DLM_ID", id)
            .output()
            .unwrap()
    };
    assert_exit(&run("env-id", &["lock", "e", "--expire", "30"]), 0);
    assert_exit(&run("env-id", &["test", "e"]), 0);
    assert_exit(&run("someone", &["test", "e"]), 1);
}

#[test]
fn version_and_stats() {
    let server = TestServer::start();
    let version = dlm(&server, &["version"]);
    assert_exit(&version, 0);
    assert!(stdout(&version).starts_with("JackrabbitDLM/"));

    let stats = dlm(&server, &["--json", "stats"]);
    assert_exit(&stats, 0);
    let json: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(json["Status"], "Stats");
    assert!(json["Connections"].as_u64().is_some_and(|n| n >= 2));
    let plain = dlm(&server, &["stats"]);
    assert!(
        stdout(&plain)
            .lines()
            .any(|line| line.starts_with("Connections: "))
    );
}

#[test]
fn usage_errors_exit_2_in_one_line() {
    let server = TestServer::start();
    for args in [
        &[][..],
        &["lock", "x"],
        &["lock", "x", "--expire", "0"],
        &["lock", "x", "--expire", "soon"],
        &["frobnicate"],
        &["run", "x", "--expire", "5"],
        &["--port", "seventy", "version"],
    ] {
        let output = dlm(&server, args);
        assert_exit(&output, 2);
        assert!(output.stdout.is_empty());
    }
    // The server calls an Expire above its maximum TTL malformed.
    assert_exit(&dlm(&server, &["lock", "x", "--expire", "100000"]), 2);
}

#[test]
fn connection_errors_exit_3_in_one_line() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    for args in [
        &["version"][..],
        &["lock", "x", "--expire", "5"],
        &["run", "x", "--expire", "5", "--", "true"],
    ] {
        let output = dlm_command(port, args).output().unwrap();
        assert_exit(&output, 3);
        assert!(stderr(&output).contains(&format!("127.0.0.1:{port}")));
    }
}

#[test]
fn run_holds_the_lock_passes_status_and_token_and_releases() {
    let server = TestServer::start();
    let port = server.addr.port().to_string();
    // The command itself checks that the lock is held: a second `dlm run`
    // with --wait 0 must give up with 1 without running its command.
    let script = r#"
        "$DLM" --port "$PORT" run shared --expire 5 --wait 0 -- echo inner ran
        echo "inner=$?"
        echo "token=$DLM_TOKEN"
        exit 7
    "#;
    let output = dlm_command(
        server.addr.port(),
        &["run", "shared", "--expire", "5", "--", "sh", "-c", script],
    )
    .env("DLM", DLM)
    .env("PORT", &port)
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(!out.contains("inner ran"), "{out}");
    assert!(out.contains("inner=1"), "{out}");
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("token="))
        .unwrap_or_default();
    assert!(token.parse::<u64>().is_ok_and(|t| t > 0), "{out}");

    // Released on exit: anyone may take it at once.
    assert_exit(&dlm(&server, &["test", "shared"]), 1);
    let again = dlm(
        &server,
        &[
            "run", "shared", "--expire", "5", "--wait", "0", "--", "true",
        ],
    );
    assert_exit(&again, 0);
}

#[test]
fn run_waits_for_the_lock() {
    let server = TestServer::start();
    // Held by another ID that never releases; it expires after 1 s.
    assert_exit(
        &dlm(&server, &["--id", "other", "lock", "w", "--expire", "1"]),
        0,
    );
    assert_exit(
        &dlm(
            &server,
            &["run", "w", "--expire", "5", "--wait", "0", "--", "true"],
        ),
        1,
    );
    let waited = dlm(
        &server,
        &[
            "run", "w", "--expire", "5", "--wait", "20", "--", "sh", "-c", "exit 3",
        ],
    );
    assert_eq!(waited.status.code(), Some(3), "{}", stderr(&waited));
}

#[test]
fn run_reports_signals_and_missing_commands() {
    let server = TestServer::start();
    let killed = dlm(
        &server,
        &["run", "s", "--expire", "5", "--", "sh", "-c", "kill -9 $$"],
    );
    assert_eq!(killed.status.code(), Some(128 + 9));
    let missing = dlm(
        &server,
        &["run", "s", "--expire", "5", "--", "/nonexistent/command"],
    );
    assert_eq!(missing.status.code(), Some(127));
    assert!(stderr(&missing).contains("cannot run"));
    assert_exit(&dlm(&server, &["test", "s"]), 1);
    assert!(stdout(&dlm(&server, &["--json", "test", "s"])).contains("Unlocked"));
}

#[test]
fn run_terminates_the_command_when_the_hold_is_lost() {
    let server = TestServer::start();
    // The command hands the lock to another ID behind dlm's back, then
    // sleeps; the next renewal finds NotOwner and sends SIGTERM.
    let script = r#"
        "$DLM" --port "$PORT" --id runner unlock lost &&
        "$DLM" --port "$PORT" --id thief lock lost --expire 30 >/dev/null &&
        exec sleep 30
    "#;
    let output = dlm_command(
        server.addr.port(),
        &[
            "--id", "runner", "run", "lost", "--expire", "1", "--", "sh", "-c", script,
        ],
    )
    .env("DLM", DLM)
    .env("PORT", server.addr.port().to_string())
    .output()
    .unwrap();
    assert_eq!(
        output.status.code(),
        Some(128 + libc::SIGTERM),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("lost the lock"),
        "{}",
        stderr(&output)
    );
    // The thief's hold is untouched by the runner's release.
    assert_exit(&dlm(&server, &["--id", "thief", "test", "lost"]), 0);
}

#[test]
fn sigterm_to_dlm_run_reaches_the_command_and_the_lock_is_released() {
    use std::io::{BufRead, BufReader};
    let server = TestServer::start();
    let mut run = dlm_command(
        server.addr.port(),
        &[
            "run",
            "t",
            "--expire",
            "30",
            "--",
            "sh",
            "-c",
            "echo started; exec sleep 30",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Once the command prints, dlm holds the lock and handles signals.
    let mut line = String::new();
    BufReader::new(run.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "started\n");
    assert_exit(
        &dlm(&server, &["run", "t", "--expire", "5", "--", "true"]),
        1,
    );

    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(run.id() as libc::pid_t, libc::SIGTERM);
    }
    let output = run.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(128 + libc::SIGTERM),
        "{}",
        stderr(&output)
    );
    assert_exit(
        &dlm(&server, &["run", "t", "--expire", "5", "--", "true"]),
        0,
    );
}

#[test]
fn shared_and_limited_locks_and_runs() {
    let server = TestServer::start();
    let with_id = |id: &str, args: &[&str]| {
        dlm_command(server.addr.port(), args)
            .env("DLM_ID", id)
            .output()
            .unwrap()
    };
    assert_exit(
        &with_id("r1", &["lock", "rw", "--expire", "30", "--shared"]),
        0,
    );
    let second = with_id(
        "r2",
        &["--json", "lock", "rw", "--expire", "30", "--shared"],
    );
    assert_exit(&second, 0);
    assert!(
        stdout(&second).contains(r#""Mode":"Shared""#),
        "{}",
        stdout(&second)
    );
    // A writer is refused (exit 1); --limit needs --shared (usage, exit 2).
    assert_exit(&with_id("w", &["lock", "rw", "--expire", "30"]), 1);
    assert_exit(
        &with_id("w", &["lock", "rw", "--expire", "30", "--limit", "2"]),
        2,
    );
    // A shared run goes ahead beside the readers; an exclusive one does not.
    assert_exit(
        &with_id(
            "r3",
            &["run", "rw", "--expire", "5", "--shared", "--", "true"],
        ),
        0,
    );
    assert_exit(
        &with_id("w", &["run", "rw", "--expire", "5", "--", "true"]),
        1,
    );

    // --limit 1: a second run inside the first finds no place.
    let script = r#"
        DLM_ID=inner "$DLM" --port "$PORT" run sem --expire 5 --limit 1 -- echo inner ran
        echo "inner=$?"
    "#;
    let output = with_id_script(
        &server,
        "outer",
        &[
            "run", "sem", "--expire", "5", "--limit", "1", "--", "sh", "-c", script,
        ],
    );
    assert_exit(&output, 0);
    let out = stdout(&output);
    assert!(
        !out.contains("inner ran") && out.contains("inner=1"),
        "{out}"
    );
    // --limit 2: it finds one.
    let script = r#"
        DLM_ID=inner "$DLM" --port "$PORT" run sem2 --expire 5 --limit 2 -- echo inner ran
    "#;
    let output = with_id_script(
        &server,
        "outer",
        &[
            "run", "sem2", "--expire", "5", "--limit", "2", "--", "sh", "-c", script,
        ],
    );
    assert_exit(&output, 0);
    assert!(stdout(&output).contains("inner ran"), "{}", stdout(&output));
}

/// `dlm` as `id` with `args`, for a shell script that calls `$DLM` again.
fn with_id_script(server: &TestServer, id: &str, args: &[&str]) -> Output {
    dlm_command(server.addr.port(), args)
        .env("DLM_ID", id)
        .env("DLM", DLM)
        .env("PORT", server.addr.port().to_string())
        .output()
        .unwrap()
}
