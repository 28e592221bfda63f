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
    // as another ID (an empty DLM_ID draws one) with --wait 0 must give up
    // with 1 without running its command; with -E 9, with 9.
    let script = r#"
        DLM_ID= "$DLM" --port "$PORT" run shared --expire 5 --wait 0 -- echo inner ran
        echo "inner=$?"
        DLM_ID= "$DLM" --port "$PORT" run shared --expire 5 -E 9 -c 'echo inner ran'
        echo "conflict=$?"
        echo "token=$DLM_TOKEN"
        echo "name=$DLM_LOCK_NAME"
        echo "id=$DLM_ID"
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
    assert!(out.contains("conflict=9"), "{out}");
    assert!(out.contains("name=shared\n"), "{out}");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("id="))
        .unwrap_or_default();
    assert!(id.len() >= 37, "the drawn ID is passed on: {out}");
    // The inner runs drew their IDs: their refusals say so, and how to fix it.
    assert!(
        stderr(&output).contains("fresh random ID"),
        "{}",
        stderr(&output)
    );
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
fn a_drawn_id_says_why_it_owns_nothing_and_how_to_fix_it() {
    let server = TestServer::start();
    assert_exit(&dlm(&server, &["lock", "mine", "--expire", "30"]), 0);
    let unlock = dlm(&server, &["unlock", "mine"]);
    assert_exit(&unlock, 1);
    let message = stderr(&unlock);
    assert!(message.contains("owned by another ID"), "{message}");
    assert!(message.contains("fresh random ID"), "{message}");
    assert!(
        message.contains("--id") && message.contains("DLM_ID"),
        "{message}"
    );

    // With an ID given (by option or environment), no hint: the ID is
    // what the user chose.
    assert_exit(
        &dlm(&server, &["--id", "a", "lock", "theirs", "--expire", "30"]),
        0,
    );
    let refused = dlm(&server, &["--id", "b", "unlock", "theirs"]);
    assert_exit(&refused, 1);
    assert!(!stderr(&refused).contains("random"), "{}", stderr(&refused));
    let from_env = dlm_command(server.addr.port(), &["unlock", "theirs"])
        .env("DLM_ID", "a")
        .output()
        .unwrap();
    assert_exit(&from_env, 0);
}

#[test]
fn options_come_from_the_environment_too() {
    let server = TestServer::start();
    let output = Command::new(DLM)
        .env_remove("DLM_ID")
        .env("DLM_PORT", server.addr.port().to_string())
        .env("DLM_CODEC", "identity")
        .env("DLM_EXPIRE", "30")
        .args(["--id", "e", "put", "env", "plain text"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    // Stored as it is: the identity codec came from DLM_CODEC.
    let mut raw = server.connect();
    let got = raw.call(&common::request("Get", "e", "env", "0"));
    assert_eq!(got["DataStore"], "plain text");

    let help = Command::new(DLM).args(["--help"]).output().unwrap();
    let help = stdout(&help);
    for env in [
        "[env: DLM_HOST=",
        "[env: DLM_PORT=",
        "[env: DLM_CODEC=",
        "[env: DLM_ID",
    ] {
        assert!(help.contains(env), "{env} missing from --help:\n{help}");
    }
    let run_help = Command::new(DLM).args(["run", "--help"]).output().unwrap();
    let run_help = stdout(&run_help);
    for text in [
        "--conflict-exit-code",
        "--kill-after",
        "--command",
        "DLM_LOCK_NAME",
        "--shared",
        "--limit",
    ] {
        assert!(
            run_help.contains(text),
            "{text} missing from run --help:\n{run_help}"
        );
    }
}

#[test]
fn codecs_store_what_their_name_says() {
    let server = TestServer::start();
    let mut raw = server.connect();
    let stored = |raw: &mut common::Client, name: &str| {
        raw.call(&common::request("Get", "c", name, "0"))["DataStore"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let put = |codec: &[&str], name: &str| {
        let args = [
            &["--id", "c"][..],
            codec,
            &["put", name, "hi", "--expire", "30"],
        ]
        .concat();
        assert_exit(&dlm(&server, &args), 0);
    };
    put(&[], "default");
    assert_eq!(
        stored(&mut raw, "default"),
        jackrabbit_dlm::protocol::codec::encode(b"hi")
    );
    put(&["--codec", "table"], "table");
    assert_eq!(stored(&mut raw, "table"), stored(&mut raw, "default"));
    put(&["--codec", "identity"], "identity");
    assert_eq!(stored(&mut raw, "identity"), "hi");
    put(&["--codec", "base64"], "base64");
    assert_eq!(stored(&mut raw, "base64"), "aGk=");
    // Each reads back through its own codec.
    for (codec, name) in [
        ("table", "default"),
        ("identity", "identity"),
        ("base64", "base64"),
    ] {
        let got = dlm(&server, &["--id", "c", "--codec", codec, "get", name]);
        assert_exit(&got, 0);
        assert_eq!(got.stdout, b"hi", "{codec}");
    }
    // Bytes that are not text: fine for table, refused by identity.
    let mut binary = dlm_command(
        server.addr.port(),
        &[
            "--id", "c", "--codec", "identity", "put", "bin", "-", "--expire", "30",
        ],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    binary
        .stdin
        .take()
        .unwrap()
        .write_all(&[0xff, 0x00])
        .unwrap();
    let refused = binary.wait_with_output().unwrap();
    assert_exit(&refused, 2);
    assert!(
        stderr(&refused).contains("--codec table"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn identity_new_writes_a_private_file_once() {
    use std::os::unix::fs::PermissionsExt;
    let dir = common::temp_dir("dlm-identity");
    let config = dir.join("Config");
    let config_text = config.to_string_lossy().into_owned();
    let made = Command::new(DLM)
        .args(["identity", "new", "billing", "--dir", &config_text])
        .output()
        .unwrap();
    assert_exit(&made, 0);
    let path = config.join("billing.cfg");
    assert!(
        stdout(&made).contains(&path.display().to_string()),
        "{}",
        stdout(&made)
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let identity = file["Identity"].as_str().unwrap();
    assert!(
        (1364..=2728).contains(&identity.len()),
        "{}",
        identity.len()
    );
    assert!(
        identity
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );

    let again = Command::new(DLM)
        .args(["identity", "new", "billing", "--dir", &config_text])
        .output()
        .unwrap();
    assert_exit(&again, 2);
    assert!(
        stderr(&again).contains("exists already"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        file.to_string() + "\n"
    );
    for bad in ["../escape", ".hidden", "a/b", ""] {
        let refused = Command::new(DLM)
            .args(["identity", "new", bad, "--dir", &config_text])
            .output()
            .unwrap();
        assert_exit(&refused, 2);
        assert!(
            stderr(&refused).contains("Name"),
            "{bad:?}: {}",
            stderr(&refused)
        );
    }
    assert_eq!(
        std::fs::read_dir(&config).unwrap().count(),
        1,
        "nothing else written"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A listener that reads one request line, answers it with `reply` and
/// returns the line (table-decoded if it was encoded).
fn recording_server(reply: &'static str) -> (u16, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, BufReader};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end().to_owned();
        let (plain, answer) = if line.starts_with('{') {
            (line, reply.to_owned())
        } else {
            let plain = jackrabbit_dlm::protocol::codec::decode(line.as_bytes()).unwrap();
            let answer = jackrabbit_dlm::protocol::codec::encode(reply.as_bytes());
            (String::from_utf8(plain).unwrap(), answer)
        };
        reader
            .get_mut()
            .write_all(format!("{answer}\n").as_bytes())
            .unwrap();
        plain
    });
    (port, server)
}

#[test]
fn name_and_identity_file_go_on_every_request() {
    let dir = common::temp_dir("dlm-auth");
    let file = jackrabbit_dlm::client::identity::write_identity_file(&dir, "svc").unwrap();
    let identity = jackrabbit_dlm::client::identity::read_identity_file(&file).unwrap();
    // Upstream's answer to Lock: no Token.
    let (port, line) = recording_server(r#"{"Status":"Locked","ID":"w"}"#);
    let file_text = file.to_string_lossy().into_owned();
    let locked = dlm_command(
        port,
        &[
            "--id",
            "w",
            "--encoded",
            "--name",
            "svc",
            "--identity-file",
            &file_text,
            "lock",
            "jobs",
            "--expire",
            "5",
        ],
    )
    .output()
    .unwrap();
    assert_exit(&locked, 0);
    assert!(stdout(&locked).contains("no token"), "{}", stdout(&locked));
    assert_eq!(
        line.join().unwrap(),
        format!(
            r#"{{"ID":"w","FileName":"jobs","Action":"Lock","Expire":"5","Name":"svc","Identity":"{identity}"}}"#
        )
    );
    // One without the other is a usage error, before anything is sent.
    let half = dlm_command(port, &["--name", "svc", "version"])
        .output()
        .unwrap();
    assert_exit(&half, 2);
    std::fs::write(dir.join("bad.cfg"), "{}").unwrap();
    let bad_file = dir.join("bad.cfg").to_string_lossy().into_owned();
    let bad = dlm_command(
        port,
        &["--name", "svc", "--identity-file", &bad_file, "version"],
    )
    .output()
    .unwrap();
    assert_exit(&bad, 4);
    assert!(
        stderr(&bad).contains("not an identity file"),
        "{}",
        stderr(&bad)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_kills_a_command_that_ignores_sigterm_after_the_hold_is_lost() {
    let server = TestServer::start();
    let script = r#"
        trap '' TERM
        "$DLM" --port "$PORT" --id runner unlock lost &&
        "$DLM" --port "$PORT" --id thief lock lost --expire 30 >/dev/null &&
        while :; do sleep 1; done
    "#;
    let output = dlm_command(
        server.addr.port(),
        &[
            "--id",
            "runner",
            "run",
            "lost",
            "--expire",
            "1",
            "--kill-after",
            "0.2",
            "-c",
            script,
        ],
    )
    .env("DLM", DLM)
    .env("PORT", server.addr.port().to_string())
    .output()
    .unwrap();
    assert_eq!(
        output.status.code(),
        Some(128 + libc::SIGKILL),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("SIGKILL"), "{}", stderr(&output));
}

#[test]
fn chart_draws_every_counter_of_a_statistics_log() {
    let dir = common::temp_dir("dlm-chart");
    let log = dir.join("JackrabbitDLM.log");
    std::fs::write(
        &log,
        "2026-11-26 13:00:00.000001 Jackrabbit DLM 0.1.0 listening on 127.0.0.1:37373\n\
         2026-11-26 14:00:00.000123 AData: 3, ALock: 12, Connections: 410, Lock: 40211\n\
         2026-11-26 14:00:00.000200 DLMerror/NotOwner: 10.0.0.7 12\n\
         2026-11-26 15:00:00.000123 ALock: 14, MemoryMax: 1.25, NotOwner: 17022\n\
         2026-11-26 16:00:00.5 Idle: 1\n\
         2026-11-26 16:30:00.000001 Jackrabbit DLM 0.1.0 stopped. Lock: 3\n",
    )
    .unwrap();
    let svg = dir.join("chart.svg");
    let chart = || {
        Command::new(DLM)
            .args([
                "chart",
                &log.to_string_lossy(),
                "-o",
                &svg.to_string_lossy(),
            ])
            .output()
            .unwrap()
    };
    let output = chart();
    assert_exit(&output, 0);
    assert!(
        stdout(&output).contains("Drew 7 counters over 3 lines"),
        "{}",
        stdout(&output)
    );
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(
        drawn.starts_with("<svg"),
        "{}",
        &drawn[..drawn.len().min(200)]
    );
    for counter in [
        "AData",
        "ALock",
        "Connections",
        "Lock",
        "MemoryMax",
        "NotOwner",
        "Idle",
    ] {
        assert!(
            drawn.contains(&format!(">{counter}<")) || drawn.contains(&format!(">\n{counter}\n<")),
            "{counter} has no legend entry"
        );
    }
    assert!(!drawn.contains("DLMerror"), "audit lines are not counters");
    assert!(
        drawn.matches("<polyline").count() >= 7,
        "a line per counter"
    );

    std::fs::write(
        &log,
        "2026-11-26 13:00:00.000001 Jackrabbit DLM 0.1.0 listening\n",
    )
    .unwrap();
    let empty = chart();
    assert_exit(&empty, 2);
    assert!(
        stderr(&empty).contains("no statistics lines"),
        "{}",
        stderr(&empty)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// On a terminal (`script` gives dlm one), `dlm run --wait` shows that it
/// waits and for how long; without one (every other test), it is silent.
#[test]
fn run_shows_its_wait_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no script(1) to make a terminal");
        return;
    }
    let server = TestServer::start();
    // Held by another ID for 2 s (real time: the binary's clock).
    assert_exit(
        &dlm(&server, &["--id", "other", "lock", "w", "--expire", "2"]),
        0,
    );
    let inner = format!(
        "{DLM} --port {} run w --expire 5 --wait 20 -- true",
        server.addr.port()
    );
    let output = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .env_remove("DLM_ID")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let shown = stdout(&output);
    assert!(
        shown.contains(r#"dlm: waiting for the lock "w": 1s of up to 20s"#),
        "{shown:?}"
    );

    // Not a terminal: nothing about waiting.
    assert_exit(
        &dlm(&server, &["--id", "other", "lock", "w2", "--expire", "1"]),
        0,
    );
    let quiet = dlm(
        &server,
        &["run", "w2", "--expire", "5", "--wait", "20", "--", "true"],
    );
    assert_exit(&quiet, 0);
    assert!(!stderr(&quiet).contains("waiting"), "{}", stderr(&quiet));
}

/// `dlm lock --shared [--limit N]`: shares beside each other, never beside
/// an exclusive holder; a limit makes a semaphore.
#[test]
fn lock_shared_and_a_semaphore() {
    let server = TestServer::start();
    let share = |id: &str, extra: &[&str]| {
        let mut args = vec!["--id", id, "lock", "catalog", "--expire", "60", "--shared"];
        args.extend_from_slice(extra);
        dlm(&server, &args)
    };
    let a = share("a", &["--limit", "2"]);
    assert_exit(&a, 0);
    assert!(stdout(&a).contains("shared"), "{}", stdout(&a));
    assert_exit(&share("b", &["--limit", "2"]), 0);
    // Full: a third share of the semaphore is refused, and so is an
    // exclusive hold.
    assert_exit(&share("c", &["--limit", "2"]), 1);
    assert_exit(
        &dlm(&server, &["--id", "w", "lock", "catalog", "--expire", "60"]),
        1,
    );
    let json = dlm(
        &server,
        &[
            "--json", "--id", "a", "lock", "catalog", "--expire", "60", "--shared", "--limit", "2",
        ],
    );
    let reply: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(reply["Mode"], "Shared");
    // --limit needs --shared.
    assert_exit(
        &dlm(&server, &["lock", "x", "--expire", "5", "--limit", "2"]),
        2,
    );
}

/// A `dlm run` whose command prints `started` and then waits for a line on
/// its stdin: the test knows when it holds, and ends it when it chooses.
struct Running {
    child: std::process::Child,
}

impl Running {
    /// Starts `dlm --id ID run NAME ARGS... -- sh -c 'echo started; read x'`
    /// and returns once the command has started (so dlm holds), or `None`
    /// if dlm exited first, with its output.
    fn start(server: &TestServer, id: &str, name: &str, args: &[&str]) -> Result<Running, Output> {
        use std::io::{BufRead, BufReader};
        let mut all = vec!["--id", id, "run", name];
        all.extend_from_slice(args);
        all.extend(["--", "sh", "-c", "echo started; read x; echo ended"]);
        let mut child = dlm_command(server.addr.port(), &all)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).unwrap();
        if line == "started\n" {
            child.stdout = Some(out.into_inner());
            Ok(Running { child })
        } else {
            Err(child.wait_with_output().unwrap())
        }
    }

    /// Lets the command finish; dlm's output once it has exited.
    fn finish(mut self) -> Output {
        self.child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        self.child.wait_with_output().unwrap()
    }
}

/// What `TestLock` by `id` on `name` answers, over a raw connection.
fn test_lock_as(server: &TestServer, id: &str, name: &str) -> serde_json::Value {
    server
        .connect()
        .call(&common::request("TestLock", id, name, "0"))
}

/// `dlm run --shared`: two commands hold the lock at once; an exclusive
/// `dlm lock` or `dlm run` is refused meanwhile, and takes it once both
/// have exited.
#[test]
fn run_shared_commands_hold_at_once_and_keep_writers_out() {
    let server = TestServer::start();
    let shared = ["--shared", "--expire", "30"];
    let r1 = Running::start(&server, "r1", "catalog", &shared).expect("r1 runs");
    let r2 = Running::start(&server, "r2", "catalog", &shared).expect("r2 runs beside r1");
    let tested = test_lock_as(&server, "r2", "catalog");
    assert_eq!(tested["Mode"], "Shared", "{tested}");
    assert_eq!(tested["Holders"], 2, "{tested}");

    let writer = dlm(&server, &["--id", "w", "lock", "catalog", "--expire", "30"]);
    assert_exit(&writer, 1);
    let exclusive = dlm(
        &server,
        &[
            "--id", "w", "run", "catalog", "--expire", "30", "-E", "9", "--", "true",
        ],
    );
    assert_eq!(exclusive.status.code(), Some(9), "{}", stderr(&exclusive));

    for run in [r1, r2] {
        let output = run.finish();
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert_eq!(stdout(&output), "ended\n");
    }
    // Each released its own share: the lock is free for a writer.
    assert_exit(
        &dlm(&server, &["--id", "w", "lock", "catalog", "--expire", "30"]),
        0,
    );
}

/// `dlm run --limit 2`: two run at once, a third gives up at once with
/// --conflict-exit-code (no --wait), or queues with --wait and runs as
/// soon as one of the two has exited.
#[test]
fn run_limit_lets_n_run_and_the_next_waits_or_gives_up() {
    let server = TestServer::start();
    let limit = ["--limit", "2", "--expire", "30"];
    let first = Running::start(&server, "a", "farm", &limit).expect("first runs");
    let second = Running::start(&server, "b", "farm", &limit).expect("second runs");

    let third = dlm(
        &server,
        &[
            "--id", "c", "run", "farm", "--limit", "2", "--expire", "30", "-E", "9", "--", "echo",
            "ran",
        ],
    );
    assert_eq!(third.status.code(), Some(9), "{}", stderr(&third));
    assert_eq!(stdout(&third), "", "the third command did not run");

    // With --wait it queues on the server; once it is parked, the first
    // lets go and the third gets its place.
    let mut waiting = dlm_command(
        server.addr.port(),
        &[
            "--id", "c", "run", "farm", "--limit", "2", "--expire", "30", "--wait", "60", "--",
            "echo", "ran",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut probe = server.connect();
    let stats = common::stats_until(&mut probe, std::time::Duration::from_secs(20), |s| {
        s["Waited"].as_u64() >= Some(1)
    });
    assert_eq!(stats["Waited"], 1, "{stats}");
    assert!(waiting.try_wait().unwrap().is_none(), "it waits");
    let output = first.finish();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let output = waiting.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "ran\n");
    assert_eq!(second.finish().status.code(), Some(0));
    // A semaphore's holders must agree on N.
    let r = Running::start(&server, "d", "farm", &limit).expect("d runs");
    let other_n = dlm(
        &server,
        &[
            "--id", "e", "run", "farm", "--limit", "3", "--expire", "30", "--", "true",
        ],
    );
    assert_exit(&other_n, 1);
    assert_eq!(r.finish().status.code(), Some(0));
}

/// A share held by `dlm run --shared` outlives its TTL while the command
/// runs: renewals (every expire/3) keep it, with its token, and the lock
/// is free once the command has exited.
#[test]
fn run_shared_renews_its_share_past_the_ttl() {
    let server = TestServer::start();
    let run = Running::start(
        &server,
        "renewer",
        "nightly",
        &["--shared", "--limit", "3", "--expire", "1.2"],
    )
    .expect("runs");
    let before = test_lock_as(&server, "renewer", "nightly");
    assert_eq!(before["Mode"], "Shared", "{before}");
    // Renewals come every 0.4 s; four of them span more than the 1.2 s TTL.
    let mut probe = server.connect();
    let stats = common::stats_until(&mut probe, std::time::Duration::from_secs(20), |s| {
        s["Relock"].as_u64() >= Some(4)
    });
    assert!(stats["Relock"].as_u64() >= Some(4), "{stats}");
    let after = test_lock_as(&server, "renewer", "nightly");
    assert_eq!(common::status(&after), "Locked", "{after}");
    assert_eq!(after["Holders"], 1, "{after}");
    // Renewed as a share with its limit: a second share still fits, a
    // writer does not.
    assert_eq!(stats["Lock"], 1, "one grant, the rest renewals: {stats}");
    assert_exit(
        &dlm(&server, &["--id", "w", "lock", "nightly", "--expire", "5"]),
        1,
    );
    let second = [
        "--id", "s2", "lock", "nightly", "--expire", "30", "--shared", "--limit", "3",
    ];
    assert_exit(&dlm(&server, &second), 0);
    assert_exit(&dlm(&server, &["--id", "s2", "unlock", "nightly"]), 0);
    let output = run.finish();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!stderr(&output).contains("lost"), "{}", stderr(&output));
    let free = test_lock_as(&server, "anyone", "nightly");
    assert_eq!(common::status(&free), "Unlocked", "{free}");
}
