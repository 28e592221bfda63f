//! `dlm run`: a distributed `flock(1)`.
//!
//! Take the lock (queueing for up to `--wait` with the server's `Wait`
//! extension, and saying so on a terminal), hand the hold to the client's
//! [`RenewingGuard`] (the crate's one renewal loop, every `expire / 3` on
//! its own thread), run the command with `$DLM_TOKEN`, `$DLM_LOCK_NAME`
//! and `$DLM_ID`, release the hold when the command exits, and exit with
//! the command's status.
//!
//! With `--shared` (or `--limit N`, a semaphore of N places) the hold is a
//! share: taken with a shared `Lock` and renewed as one (the same `Limit`
//! each time), so several such commands run at once, up to the limit, and
//! never beside an exclusive `dlm run` or `dlm lock` of the same name.
//!
//! The main thread watches the child with `try_wait` and the guard with
//! [`RenewingGuard::wait_lost`] in turn, and it alone signals the child:
//! only after `try_wait` said it is still running, and an unreaped child
//! keeps its pid, so a signal can never reach a stranger that reused the
//! pid. When the guard reports the hold lost (see `RenewingGuard` for
//! when), the command gets SIGTERM, and SIGKILL `--kill-after` seconds
//! later if it is still running.

use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use jackrabbit_dlm::client::{Error, FencingToken, Locker, RenewingGuard};

use super::{Outcome, Report};

/// How often to look whether the command has exited.
const CHILD_POLL: Duration = Duration::from_millis(25);

/// Set by SIGTERM or SIGHUP to `dlm`: passed on to the command as SIGTERM,
/// and `dlm` stays to release the lock once the command has exited.
static TERMINATE: AtomicBool = AtomicBool::new(false);

/// Set by SIGINT. A terminal's Ctrl-C already reaches the command (it is in
/// the same process group), so it is not passed on; `dlm` only survives it
/// to release the lock. A handler rather than `SIG_IGN`, because an ignored
/// signal stays ignored across `exec` and the command would not get Ctrl-C.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// `dlm run`'s options.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub expire: Duration,
    pub wait: Duration,
    pub conflict_exit_code: u8,
    pub kill_after: Option<Duration>,
    /// Hold a share (with the locker's limit, if any) instead of the lock.
    pub shared: bool,
}

/// Runs `command` under the lock and returns the exit status for `dlm`.
pub fn run(mut locker: Locker, options: &Options, command: &[OsString], report: Report) -> u8 {
    let Some((program, args)) = command.split_first() else {
        eprintln!("dlm: run needs a COMMAND after -- (or -c 'shell command')");
        return Outcome::Usage as u8;
    };
    // The server queues us (first come, first served) for up to `wait`.
    let token = match take(&mut locker, options) {
        Ok(token) => token,
        Err(e) if e.is_not_owner() => {
            eprintln!("dlm: {e}{}", report.hint(e.status()));
            return options.conflict_exit_code;
        }
        Err(e) => return report.fail(&e),
    };
    let kept = if options.shared {
        locker.keep_renewed_shared(options.expire)
    } else {
        locker.keep_renewed(options.expire)
    };
    let guard = match kept {
        Ok(guard) => guard,
        Err(e) => {
            let _ = locker.unlock();
            return report.fail(&e);
        }
    };
    if let Err(e) = catch_signals() {
        release(guard);
        eprintln!("dlm: cannot install signal handlers: {e}");
        return Outcome::Server as u8;
    }
    let mut child = Command::new(program);
    child
        .args(args)
        .env("DLM_LOCK_NAME", locker.name())
        .env("DLM_ID", locker.id());
    match token {
        Some(token) => child.env("DLM_TOKEN", token.to_string()),
        None => child.env_remove("DLM_TOKEN"),
    };
    let status = match child.spawn() {
        Ok(child) => supervise(child, &guard, options.kill_after),
        Err(e) => {
            release(guard);
            eprintln!("dlm: cannot run {}: {e}", program.to_string_lossy());
            // The shell's conventions: 127 not found, 126 not runnable.
            return if e.kind() == io::ErrorKind::NotFound {
                127
            } else {
                126
            };
        }
    };
    release(guard);
    match status {
        Ok(status) => exit_status(status),
        Err(e) => {
            eprintln!("dlm: lost track of the command: {e}");
            Outcome::Server as u8
        }
    }
}

/// Takes the lock, queueing up to `--wait`; on a terminal, says that it is
/// waiting and for how long while it does.
fn take(locker: &mut Locker, options: &Options) -> Result<Option<FencingToken>, Error> {
    let acquire = |locker: &mut Locker| {
        if options.shared {
            locker.lock_shared_wait(options.expire, options.wait)
        } else {
            locker.lock_wait(options.expire, options.wait)
        }
    };
    if options.wait.is_zero() || !io::stderr().is_terminal() {
        return acquire(locker);
    }
    let (done, finished) = mpsc::channel::<()>();
    let name = locker.name().to_owned();
    let wait = options.wait;
    let ticker = thread::spawn(move || {
        let start = Instant::now();
        // The first second passes in silence: most locks are free.
        while let Err(mpsc::RecvTimeoutError::Timeout) =
            finished.recv_timeout(Duration::from_secs(1))
        {
            let mut err = io::stderr().lock();
            let _ = write!(
                err,
                "\r\x1b[K{}",
                waiting_line(&name, start.elapsed(), wait)
            );
            let _ = err.flush();
        }
        let _ = write!(io::stderr().lock(), "\r\x1b[K");
    });
    let outcome = acquire(locker);
    drop(done);
    let _ = ticker.join();
    outcome
}

/// What the terminal shows while `dlm run --wait` waits.
pub fn waiting_line(name: &str, waited: Duration, wait: Duration) -> String {
    format!(
        "dlm: waiting for the lock {name:?}: {}s of up to {}s",
        waited.as_secs(),
        wait.as_secs_f64().ceil()
    )
}

fn catch_signals() -> io::Result<()> {
    signal_hook::flag::register(libc::SIGTERM, &TERMINATE)?;
    signal_hook::flag::register(libc::SIGHUP, &TERMINATE)?;
    signal_hook::flag::register(libc::SIGINT, &INTERRUPTED)?;
    Ok(())
}

/// Watches the child and the hold until the child exits; returns how it
/// exited.
fn supervise(
    mut child: Child,
    guard: &RenewingGuard,
    kill_after: Option<Duration>,
) -> io::Result<ExitStatus> {
    // When the hold was lost, and whether SIGKILL went out since.
    let mut lost_at: Option<Instant> = None;
    let mut killed = false;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if TERMINATE.swap(false, Ordering::SeqCst) {
            signal(&child, libc::SIGTERM);
        }
        match lost_at {
            None => {
                // Doubles as the poll interval: wakes at once on a loss.
                if let Some(why) = guard.wait_lost(CHILD_POLL) {
                    eprintln!(
                        "dlm: lost the lock on {:?} ({why}); sending SIGTERM to the command",
                        guard.name()
                    );
                    // try_wait said it runs; it cannot have been reaped since.
                    if child.try_wait()?.is_none() {
                        signal(&child, libc::SIGTERM);
                    }
                    lost_at = Some(Instant::now());
                }
            }
            Some(at) => {
                if let Some(grace) = kill_after
                    && !killed
                    && at.elapsed() >= grace
                {
                    eprintln!(
                        "dlm: the command ignored SIGTERM for {}s; sending SIGKILL",
                        grace.as_secs_f64()
                    );
                    signal(&child, libc::SIGKILL);
                    killed = true;
                }
                thread::sleep(CHILD_POLL);
            }
        }
    }
}

/// Sends `signal` to the child, which has not been reaped (so its pid is
/// still its own).
fn signal(child: &Child, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Stops the renewals and releases the lock; a failure is reported but
/// changes no exit status, since the hold ends with its TTL anyway.
fn release(guard: RenewingGuard) {
    if let Err(e) = guard.release()
        && !e.is_not_owner()
    {
        eprintln!("dlm: could not release the lock: {e}");
    }
}

/// The exit status that passes on the command's: its code, or 128 + the
/// signal that ended it, as shells report it.
fn exit_status(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(255),
        (None, None) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waiting_line_says_what_and_how_long() {
        let line = waiting_line(
            "deploy",
            Duration::from_millis(12_400),
            Duration::from_secs(60),
        );
        assert_eq!(
            line,
            r#"dlm: waiting for the lock "deploy": 12s of up to 60s"#
        );
    }
}
