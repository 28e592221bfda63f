//! The reactor's clock: the machine's monotonic clock, or one a test drives.
//!
//! The store and the session never read a clock; the reactor reads this one
//! once per turn and passes the [`Moment`] down. A [`ManualClock`] stands
//! still until its owner moves it, which lets end-to-end tests of TTLs and
//! waits run against the real reactor over real sockets without sleeping:
//! moving it wakes the reactor, which then expires what is due.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::time::{Millis, Moment};

/// Where the reactor's time comes from.
#[derive(Debug, Clone)]
pub enum Clock {
    /// Milliseconds since `start` on the machine's monotonic clock.
    Monotonic { start: Instant },
    /// Time that moves only when the test says so.
    Manual(ManualClock),
}

impl Clock {
    /// The monotonic clock, starting now.
    pub fn monotonic() -> Clock {
        Clock::Monotonic {
            start: Instant::now(),
        }
    }

    /// The current time.
    pub fn now(&self) -> Moment {
        match self {
            Clock::Monotonic { start } => {
                Moment::from_ms(u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX))
            }
            Clock::Manual(clock) => clock.now(),
        }
    }
}

/// A clock that a test moves by hand; clones share one time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    ms: AtomicU64,
    /// The reactor's waker, once a server runs on this clock.
    waker: Mutex<Option<Arc<mio::Waker>>>,
}

impl ManualClock {
    /// A clock standing at its start.
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// The current time.
    pub fn now(&self) -> Moment {
        Moment::from_ms(self.shared.ms.load(Ordering::SeqCst))
    }

    /// Moves the clock `by` forward and wakes the reactor that runs on it,
    /// which expires what is now due before it sleeps again.
    pub fn advance(&self, by: Millis) {
        let _ = self
            .shared
            .ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |ms| {
                Some(ms.saturating_add(by.as_ms()))
            });
        let waker = self
            .shared
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(waker) = waker {
            if let Err(e) = waker.wake() {
                log::warn!("cannot wake the reactor: {e}");
            }
        }
    }

    /// Tells the clock which reactor to wake when it moves.
    pub(super) fn attach(&self, waker: Arc<mio::Waker>) {
        *self
            .shared
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(waker);
    }
}
