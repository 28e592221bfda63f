//! The reactor's clock: the machine's monotonic clock, or one a test drives.
//!
//! The store and the session never read a clock; the reactor reads this one
//! once per turn and passes the [`Moment`] down. A [`ManualClock`] stands
//! still until its owner moves it, which lets end-to-end tests of TTLs and
//! waits run against the real reactor over real sockets without sleeping:
//! moving it wakes the reactor, which then expires what is due.
//!
//! A [`SteppedClock`] (`--clock-offset-file`, a hidden test hook) is the
//! monotonic clock stepped forward by what a file says, and the file also
//! sets an offset of the wall clock ([`wall_now`]): the fault schedule
//! steps one member's clocks with it (FAULTS.md).

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::time::{Millis, Moment};

/// Where the reactor's time comes from.
#[derive(Debug, Clone)]
pub enum Clock {
    /// Milliseconds since `start` on the machine's monotonic clock.
    Monotonic { start: Instant },
    /// The monotonic clock stepped forward by a test's file.
    Stepped(SteppedClock),
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

    /// The monotonic clock, starting now, stepped as `path` says
    /// (`--clock-offset-file`), or not at all without it.
    pub fn monotonic_stepped_by(path: Option<&Path>) -> Clock {
        match path {
            Some(path) => Clock::Stepped(SteppedClock::new(path)),
            None => Clock::monotonic(),
        }
    }

    /// The current time.
    pub fn now(&self) -> Moment {
        match self {
            Clock::Monotonic { start } => Moment::from_ms(elapsed_ms(*start)),
            Clock::Stepped(clock) => clock.now(),
            Clock::Manual(clock) => clock.now(),
        }
    }
}

fn elapsed_ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// How often a [`SteppedClock`] reads its file again, at most.
const REREAD_EVERY_MS: u64 = 50;
/// The longest offsets file read; a longer one is garbled.
const MAX_OFFSETS_FILE: u64 = 64;
/// The largest step either offset may be (ten years); a larger one is
/// garbled.
const MAX_STEP_MS: u64 = 10 * 365 * 86_400 * 1000;

/// The wall clock's offset in milliseconds (0 unless a [`SteppedClock`]
/// set one): process-wide, as the wall clock is read where no clock is
/// handed down (a new leader's token floor, the first sequence number).
static WALL_OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// The wall clock, moved by the offset a [`SteppedClock`] read: every read
/// of the wall clock that the design relies on goes through here.
pub fn wall_now() -> SystemTime {
    let now = SystemTime::now();
    let offset = WALL_OFFSET_MS.load(Ordering::Relaxed);
    let by = Duration::from_millis(offset.unsigned_abs());
    let moved = if offset >= 0 {
        now.checked_add(by)
    } else {
        now.checked_sub(by)
    };
    moved.unwrap_or(now)
}

/// What an offsets file says: a forward step of the monotonic clock and a
/// signed offset of the wall clock, both in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    pub monotonic_ms: u64,
    pub wall_ms: i64,
}

/// Parses an offsets file: `MONOTONIC_MS WALL_MS`, two integers separated
/// by white space (`3000 -3600000`), each at most ten years.
pub fn parse_offsets(text: &str) -> Result<Offsets, String> {
    let mut fields = text.split_whitespace();
    let (Some(monotonic), Some(wall), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err("expected MONOTONIC_MS WALL_MS".to_owned());
    };
    let monotonic_ms: u64 = monotonic
        .parse()
        .ok()
        .filter(|&ms| ms <= MAX_STEP_MS)
        .ok_or_else(|| format!("{monotonic:?} is not a step of 0 to {MAX_STEP_MS} ms"))?;
    let wall_ms: i64 = wall
        .parse()
        .ok()
        .filter(|ms: &i64| ms.unsigned_abs() <= MAX_STEP_MS)
        .ok_or_else(|| format!("{wall:?} is not an offset of at most {MAX_STEP_MS} ms"))?;
    Ok(Offsets {
        monotonic_ms,
        wall_ms,
    })
}

/// The offsets in the file at `path`.
fn read_offsets(path: &Path) -> Result<Offsets, String> {
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_OFFSETS_FILE + 1).read_to_string(&mut text))
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_OFFSETS_FILE {
        return Err(format!("longer than {MAX_OFFSETS_FILE} bytes"));
    }
    parse_offsets(&text)
}

/// The monotonic clock stepped forward by the offsets in a file, which it
/// reads again at most every 50 ms when asked the time (a small file, in
/// a test): it never goes back, as a step smaller than the last is kept
/// at the last. Each read also sets the wall clock's offset
/// ([`wall_now`]), which may go either way. A file that is missing or
/// garbled changes nothing (logged once, until it reads well again).
#[derive(Debug, Clone)]
pub struct SteppedClock {
    start: Instant,
    path: Arc<PathBuf>,
    state: Arc<Mutex<StepState>>,
}

#[derive(Debug, Default)]
struct StepState {
    /// The forward step applied so far.
    monotonic_ms: u64,
    /// When (unstepped) the file is read next.
    next_read_ms: u64,
    /// Whether the file's last read failed (and was logged).
    failing: bool,
}

impl StepState {
    /// Takes `read` in: the greater step, the wall offset it gives.
    fn take(&mut self, read: Result<Offsets, String>, path: &Path) {
        match read {
            Ok(offsets) => {
                self.monotonic_ms = self.monotonic_ms.max(offsets.monotonic_ms);
                WALL_OFFSET_MS.store(offsets.wall_ms, Ordering::Relaxed);
                self.failing = false;
            }
            Err(e) => {
                if !self.failing {
                    log::warn!("--clock-offset-file {}: {e}; offsets kept", path.display());
                }
                self.failing = true;
            }
        }
    }
}

impl SteppedClock {
    /// The monotonic clock from now, stepped as the file at `path` says
    /// (read at once).
    pub fn new(path: &Path) -> SteppedClock {
        let clock = SteppedClock {
            start: Instant::now(),
            path: Arc::new(path.to_owned()),
            state: Arc::default(),
        };
        clock.now();
        clock
    }

    /// The current time, the file read again if it is due.
    pub fn now(&self) -> Moment {
        let elapsed = elapsed_ms(self.start);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if elapsed >= state.next_read_ms {
            state.next_read_ms = elapsed.saturating_add(REREAD_EVERY_MS);
            state.take(read_offsets(&self.path), &self.path);
        }
        Moment::from_ms(elapsed.saturating_add(state.monotonic_ms))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_files_parse_or_are_refused() {
        let parsed = |text| parse_offsets(text).map(|o| (o.monotonic_ms, o.wall_ms));
        assert_eq!(parsed("3000 -3600000\n"), Ok((3000, -3_600_000)));
        assert_eq!(parsed("  0\t7 "), Ok((0, 7)));
        assert_eq!(
            parsed(&format!("{MAX_STEP_MS} -{MAX_STEP_MS}")),
            Ok((MAX_STEP_MS, -(MAX_STEP_MS as i64)))
        );
        for bad in [
            "",
            "3000",
            "3000 1 2",
            "-1 0",
            "x 0",
            "0 1.5",
            "18446744073709551615 0",
            "0 -9223372036854775808",
            &format!("{} 0", MAX_STEP_MS + 1),
            &format!("0 {}", MAX_STEP_MS + 1),
        ] {
            assert!(parse_offsets(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_step_never_goes_back_and_a_bad_read_keeps_it() {
        let path = Path::new("offsets");
        let mut state = StepState::default();
        state.take(
            Ok(Offsets {
                monotonic_ms: 500,
                wall_ms: 0,
            }),
            path,
        );
        assert_eq!(state.monotonic_ms, 500);
        state.take(
            Ok(Offsets {
                monotonic_ms: 200,
                wall_ms: 0,
            }),
            path,
        );
        assert_eq!(state.monotonic_ms, 500, "a smaller step is not a step back");
        state.take(Err("garbled".to_owned()), path);
        assert!(state.failing);
        assert_eq!(state.monotonic_ms, 500);
        state.take(
            Ok(Offsets {
                monotonic_ms: 3500,
                wall_ms: 0,
            }),
            path,
        );
        assert_eq!((state.monotonic_ms, state.failing), (3500, false));
    }

    #[test]
    fn a_stepped_clock_reads_its_file_and_moves_the_wall_clock() {
        let dir = std::env::temp_dir().join(format!("jdlm-clock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("offsets");
        // Missing: no step at all.
        let missing = SteppedClock::new(&path);
        assert!(missing.now().as_ms() < 60_000);
        // The wall offset is process-wide: this is the only test that
        // sets one, and it sets it back.
        std::fs::write(&path, "3600000 -3600000").unwrap();
        let stepped = SteppedClock::new(&path);
        assert!(stepped.now().as_ms() >= 3_600_000);
        let behind = SystemTime::now()
            .duration_since(wall_now())
            .expect("the wall clock an hour behind");
        assert!(behind >= Duration::from_secs(3599), "{behind:?}");
        // Too long, then garbled: the step stays, the clock goes on.
        std::fs::write(&path, "1 ".repeat(100)).unwrap();
        assert!(read_offsets(&path).is_err());
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(read_offsets(&path).is_err());
        let before = stepped.now();
        std::fs::write(&path, "0 0").unwrap();
        let fresh = SteppedClock::new(&path);
        assert!(fresh.now().as_ms() < 3_600_000);
        assert!(stepped.now() >= before, "the step is kept: {before:?}");
        assert!(
            wall_now()
                .duration_since(SystemTime::now())
                .map_or(true, |ahead| ahead < Duration::from_secs(1))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
