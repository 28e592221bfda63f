//! How a server starts and stops: the run mode (the binary's, or inside a
//! test on a clock the test moves), the handle that stops it from another
//! thread, and why it could not start.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mio::Waker;

use super::clock::{Clock, ManualClock};
use crate::config::Config;

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    /// The port is taken.
    PortInUse(u16),
    /// Anything else, with a message that says what.
    Other(io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::PortInUse(port) => write!(f, "Another program is using this port: {port}"),
            StartError::Other(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<io::Error> for StartError {
    fn from(e: io::Error) -> Self {
        StartError::Other(e)
    }
}

/// How a server is run: by the binary (the machine's clock, SIGINT and
/// SIGTERM stop it) or inside a test (a clock the test moves, stopped
/// through its [`Control`]).
#[derive(Debug, Clone)]
pub struct RunMode {
    pub(super) clock: Clock,
    pub(super) signals: bool,
}

impl RunMode {
    /// The binary's: the monotonic clock (stepped as `--clock-offset-file`
    /// says, if given), stopped by SIGINT or SIGTERM.
    pub fn process(config: &Config) -> RunMode {
        RunMode {
            clock: Clock::monotonic_stepped_by(config.clock_offset_file.as_deref()),
            signals: true,
        }
    }

    /// In-process, on `clock`, with no signal handlers (they would be the
    /// whole test program's): stop it with [`Control::shutdown`].
    pub fn in_process(clock: ManualClock) -> RunMode {
        RunMode {
            clock: Clock::Manual(clock),
            signals: false,
        }
    }
}

/// A handle that stops a running server from another thread.
#[derive(Debug, Clone)]
pub struct Control {
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
}

impl Control {
    /// A handle that wakes the reactor through `waker`.
    pub(super) fn new(waker: Arc<Waker>) -> Control {
        Control {
            waker,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether [`Control::shutdown`] was called.
    pub(super) fn stop_asked(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Begins the same shutdown as SIGTERM: stop accepting, flush replies
    /// for at most a second, write the final log line, return from `run`.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Err(e) = self.waker.wake() {
            log::warn!("cannot wake the reactor: {e}");
        }
    }
}
