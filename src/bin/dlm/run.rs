//! `dlm run`: a distributed `flock(1)`.
//!
//! Take the lock (queueing for up to `--wait` with the server's `Wait`
//! extension), run the command with the hold's fencing token in
//! `$DLM_TOKEN`, renew the hold every `expire / 3` while the command runs,
//! release it when the command exits, and exit with the command's status.
//!
//! One thread does everything, polling the child with `try_wait` between
//! renewals. That keeps signalling safe: the child is only signalled after
//! `try_wait` said it is still running, and an unreaped child keeps its pid,
//! so a signal can never reach a stranger that reused the pid.
//!
//! The hold counts as lost, and the command gets SIGTERM, when a renewal is
//! refused (`NotOwner`), when a renewal is granted as a new hold (a new
//! token: the server forgot the old hold, say by restarting, and another ID
//! may have held the lock in between), or when renewals have failed on the
//! network for longer than `expire`, so the hold has certainly run out.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use jackrabbit_dlm::client::{FencingToken, Locker};

use super::{Outcome, fail};

/// How soon to try a renewal again after the server could not be reached.
const RENEW_RETRY: Duration = Duration::from_millis(200);

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

/// Runs `command` under the lock and returns the exit status for `dlm`.
/// With `shared`, the hold is a share (`dlm run --shared`, `--limit N`).
pub fn run(
    mut locker: Locker,
    expire: Duration,
    wait: Duration,
    shared: bool,
    command: &[OsString],
) -> u8 {
    let Some((program, args)) = command.split_first() else {
        eprintln!("dlm: run needs a COMMAND after --");
        return Outcome::Usage as u8;
    };
    // The server queues us (first come, first served) for up to `wait`.
    let taken = if shared {
        locker.lock_shared_wait(expire, wait)
    } else {
        locker.lock_wait(expire, wait)
    };
    let token = match taken {
        Ok(token) => token,
        Err(e) => return fail(&e),
    };
    if let Err(e) = catch_signals() {
        release(&mut locker);
        eprintln!("dlm: cannot install signal handlers: {e}");
        return Outcome::Server as u8;
    }
    let child = Command::new(program)
        .args(args)
        .env("DLM_TOKEN", token.to_string())
        .spawn();
    let status = match child {
        Ok(child) => supervise(&mut locker, child, token, expire, shared),
        Err(e) => {
            release(&mut locker);
            eprintln!("dlm: cannot run {}: {e}", program.to_string_lossy());
            // The shell's conventions: 127 not found, 126 not runnable.
            return if e.kind() == io::ErrorKind::NotFound {
                127
            } else {
                126
            };
        }
    };
    release(&mut locker);
    match status {
        Ok(status) => exit_status(status),
        Err(e) => {
            eprintln!("dlm: lost track of the command: {e}");
            Outcome::Server as u8
        }
    }
}

fn catch_signals() -> io::Result<()> {
    signal_hook::flag::register(libc::SIGTERM, &TERMINATE)?;
    signal_hook::flag::register(libc::SIGHUP, &TERMINATE)?;
    signal_hook::flag::register(libc::SIGINT, &INTERRUPTED)?;
    Ok(())
}

/// Keeps the hold alive until the child exits, and returns how it exited.
fn supervise(
    locker: &mut Locker,
    mut child: Child,
    token: FencingToken,
    expire: Duration,
    shared: bool,
) -> io::Result<ExitStatus> {
    let renew_every = expire / 3;
    let mut next_renewal = Instant::now() + renew_every;
    // The server granted `expire` from its reply; counting from our request
    // instead errs on the side of thinking the hold shorter.
    let mut held_until = Instant::now() + expire;
    let mut holding = true;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if TERMINATE.swap(false, Ordering::SeqCst) {
            terminate(&child);
        }
        let now = Instant::now();
        if holding && now >= next_renewal {
            match renew(locker, token, expire, shared, now, held_until) {
                Renewal::Renewed => {
                    held_until = now + expire;
                    next_renewal = now + renew_every;
                }
                Renewal::Retry => next_renewal = now + RENEW_RETRY.min(renew_every),
                Renewal::Lost(why) => {
                    eprintln!(
                        "dlm: lost the lock on {:?} ({why}); sending SIGTERM to the command",
                        locker.name()
                    );
                    terminate(&child);
                    holding = false;
                }
            }
        }
        let until_renewal = next_renewal.saturating_duration_since(Instant::now());
        thread::sleep(if holding {
            until_renewal.min(CHILD_POLL)
        } else {
            CHILD_POLL
        });
    }
}

/// What a renewal found.
enum Renewal {
    Renewed,
    /// The server could not be asked, but the hold has time left.
    Retry,
    /// The hold is gone, for the reason given.
    Lost(String),
}

fn renew(
    locker: &mut Locker,
    token: FencingToken,
    expire: Duration,
    shared: bool,
    now: Instant,
    held_until: Instant,
) -> Renewal {
    let renewed = if shared {
        locker.try_lock_shared(expire)
    } else {
        locker.try_lock(expire)
    };
    match renewed {
        Ok(renewed) if renewed == token => Renewal::Renewed,
        Ok(_) => Renewal::Lost("the server granted a new hold: it forgot the old one".to_owned()),
        Err(e) if e.is_io() && now < held_until => {
            eprintln!("dlm: cannot renew the lock yet: {e}");
            Renewal::Retry
        }
        Err(e) => Renewal::Lost(e.to_string()),
    }
}

/// Sends SIGTERM to the child, which has not been reaped (so its pid is
/// still its own).
fn terminate(child: &Child) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}

/// Releases the lock; a failure is reported but changes no exit status,
/// since the hold ends with its TTL anyway.
fn release(locker: &mut Locker) {
    if let Err(e) = locker.unlock()
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
