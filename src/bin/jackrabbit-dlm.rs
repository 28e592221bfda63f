//! The server binary: parse the command line, bind, serve until a signal.

use std::io::Write;
use std::process::ExitCode;

use jackrabbit_dlm::config::Config;
use jackrabbit_dlm::server::{Server, StartError, reactor::banner, systemd};

/// Diagnostics on stderr, quiet (warnings and errors only) by default.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let _ = writeln!(
                std::io::stderr().lock(),
                "jackrabbit-dlm: {}: {}",
                record.level().as_str().to_ascii_lowercase(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// Pins the calling thread to CPU `core`.
fn pin_to_core(core: usize) -> Result<(), String> {
    // SAFETY: cpu_set_t is plain data; CPU_SET is bounds-checked against
    // CPU_SETSIZE below; sched_setaffinity only reads the set.
    unsafe {
        if core >= libc::CPU_SETSIZE as usize {
            return Err(format!("--pin-core {core}: no such CPU"));
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(format!(
                "--pin-core {core}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    // Hidden: the man page from the clap definitions, for packaging.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "--generate-man")
    {
        return match jackrabbit_dlm::config::write_man_page(&mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("jackrabbit-dlm: {e}");
                ExitCode::from(1)
            }
        };
    }
    let config = match Config::from_args(std::env::args_os()) {
        Ok(config) => config,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("jackrabbit-dlm: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    if let Err(e) = config.check() {
        eprintln!("jackrabbit-dlm: {e}");
        return ExitCode::from(2);
    }
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(match config.verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    });
    if let Some(core) = config.pin_core {
        if let Err(e) = pin_to_core(core) {
            eprintln!("jackrabbit-dlm: {e}");
            return ExitCode::from(1);
        }
    }
    let server = match Server::bind(&config) {
        Ok(server) => server,
        Err(e @ StartError::PortInUse(_)) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("jackrabbit-dlm: {e}");
            return ExitCode::from(1);
        }
    };
    // Tests and scripts read the bound address (port 0 picks one) from here.
    println!("{} listening on {}", banner(), server.local_addr());
    let _ = std::io::stdout().flush();
    if let Some(addr) = server.members_addr() {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "replicating on {addr}").and_then(|()| out.flush());
    }
    if let Some(addr) = server.metrics_addr() {
        // The second line; a reader that stopped after the first must not
        // make this fail.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "metrics on http://{addr}/metrics").and_then(|()| out.flush());
    }
    systemd::notify_ready();
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jackrabbit-dlm: event loop failed: {e}");
            ExitCode::from(1)
        }
    }
}
