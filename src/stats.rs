//! The server's counters and the lines of the statistics log.
//!
//! Counter names are fixed by PROTOCOL.md: log readers and charts of older
//! deployments depend on them. [`Counters`] holds totals since start; the
//! interval line shows the difference from the previous line (so per-interval
//! counters "reset" after each line), except `ALock` and `AData`, which are
//! current values, and `MemoryMax`, a maximum (the interval line shows the
//! interval's, which the statistics log keeps). Nothing here ever sees a
//! name, an ID or a value.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

macro_rules! counters {
    ($($field:ident => $name:literal,)*) => {
        /// Every counter, as totals since the server started.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct Counters {
            $(#[doc = concat!("`", $name, "`")] pub $field: u64,)*
        }

        impl Counters {
            /// `(name, value)` for every counter, sorted by name.
            pub fn fields(&self) -> impl Iterator<Item = (&'static str, Figure)> + use<> {
                [$(($name, Figure::of($name, self.$field))),*].into_iter()
            }

            /// What happened since `earlier`; gauges (`ALock`, `AData`) and
            /// the maximum `MemoryMax` keep their current value.
            pub fn since(&self, earlier: &Counters) -> Counters {
                let mut delta = Counters {
                    $($field: self.$field.saturating_sub(earlier.$field),)*
                };
                delta.a_lock = self.a_lock;
                delta.a_data = self.a_data;
                delta.memory_max = self.memory_max;
                delta
            }
        }
    };
}

// Kept in byte order of the names, which is the order of the log line.
counters! {
    a_data => "AData",
    a_lock => "ALock",
    auth_failed => "AuthFailed",
    bad_action => "BadAction",
    bad_conn => "BadConn",
    bad_payload => "BadPayload",
    connections => "Connections",
    data_in => "DataIn",
    data_out => "DataOut",
    data_overrun => "DataOverrun",
    erase_nf => "EraseNF",
    erased => "Erased",
    expired_data => "ExpiredData",
    expired_lock => "ExpiredLock",
    forced_gc => "ForcedGC",
    get => "Get",
    get_nf => "GetNF",
    idle => "Idle",
    requests_in => "In",
    lock => "Lock",
    // In hundredths of a percent: see `Figure`.
    memory_max => "MemoryMax",
    memory_overload_check => "MemoryOverloadCheck",
    memory_refused => "NO",
    not_owner => "NotOwner",
    replies_out => "Out",
    put_new => "PutNew",
    put_update => "PutUpdate",
    refused => "Refused",
    relock => "Relock",
    test_lock => "TestLock",
    test_lock_nf => "TestLockNF",
    unlock => "Unlock",
    unlock_nf => "UnlockNF",
    wait_timeout => "WaitTimeout",
    waited => "Waited",
}

/// The one counter that is not a count: `MemoryMax`, the highest resident
/// memory seen in percent of physical memory, kept in hundredths of a
/// percent and shown with two decimals (PROTOCOL.md).
pub const MEMORY_MAX: &str = "MemoryMax";

/// A counter's value as PROTOCOL.md shows it, in `Stats` replies, the log
/// and `/metrics`: an integer, or for `MemoryMax` a number with two
/// decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    Count(u64),
    /// Hundredths, shown as `units.hh`.
    Hundredths(u64),
}

impl Figure {
    /// How counter `name`'s stored value `value` is shown.
    #[inline]
    pub fn of(name: &str, value: u64) -> Figure {
        if name == MEMORY_MAX {
            Figure::Hundredths(value)
        } else {
            Figure::Count(value)
        }
    }

    /// The stored value (hundredths for a `Hundredths`).
    pub fn raw(self) -> u64 {
        match self {
            Figure::Count(n) | Figure::Hundredths(n) => n,
        }
    }
}

impl std::fmt::Display for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Figure::Count(n) => write!(f, "{n}"),
            Figure::Hundredths(n) => write!(f, "{}.{:02}", n / 100, n % 100),
        }
    }
}

/// Refusals of the kinds `--audit` logs by client address: one
/// connection's, or one address's in an interval (`server/audit.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refusals {
    pub not_owner: u64,
    pub bad_payload: u64,
    pub auth_failed: u64,
}

impl Refusals {
    /// The kinds' names, in the order of the audit lines (by name) and of
    /// [`Refusals::counts`].
    pub const KINDS: [&'static str; 3] = ["AuthFailed", "BadPayload", "NotOwner"];

    /// The counts, in the order of [`Refusals::KINDS`].
    pub fn counts(&self) -> [u64; 3] {
        [self.auth_failed, self.bad_payload, self.not_owner]
    }

    /// The counters' figures of these kinds.
    #[inline]
    pub fn of(counters: &Counters) -> Refusals {
        Refusals {
            not_owner: counters.not_owner,
            bad_payload: counters.bad_payload,
            auth_failed: counters.auth_failed,
        }
    }

    /// Adds the counters' growth since `earlier` (their figures then).
    #[inline]
    pub fn add_since(&mut self, earlier: Refusals, counters: &Counters) {
        let now = Refusals::of(counters);
        self.not_owner += now.not_owner - earlier.not_owner;
        self.bad_payload += now.bad_payload - earlier.bad_payload;
        self.auth_failed += now.auth_failed - earlier.auth_failed;
    }

    /// Adds `other`.
    pub fn add(&mut self, other: Refusals) {
        self.not_owner += other.not_owner;
        self.bad_payload += other.bad_payload;
        self.auth_failed += other.auth_failed;
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        *self == Refusals::default()
    }
}

/// The interval line's pairs: as [`format_pairs`], but never empty (a
/// reader splits every piece on `:`): with nothing counted, `Idle: 0`.
pub fn interval_pairs(counters: &Counters) -> String {
    let pairs = format_pairs(counters);
    if pairs.is_empty() {
        "Idle: 0".to_owned()
    } else {
        pairs
    }
}

/// `Name: value` pairs, comma separated, zero values left out.
pub fn format_pairs(counters: &Counters) -> String {
    let mut line = String::new();
    for (name, value) in counters.fields().filter(|&(_, v)| v.raw() != 0) {
        if !line.is_empty() {
            line.push_str(", ");
        }
        let _ = write!(line, "{name}: {value}");
    }
    line
}

/// The wall-clock time as `YYYY-MM-DD HH:MM:SS.uuuuuu` (UTC).
pub fn timestamp(now: SystemTime) -> String {
    timestamp_at_offset(now, 0)
}

/// The wall-clock time as `YYYY-MM-DD HH:MM:SS.uuuuuu`, `offset` seconds
/// east of UTC (local time, given the local offset).
pub fn timestamp_at_offset(now: SystemTime, offset: i64) -> String {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs().saturating_add_signed(offset);
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let in_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:06}",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60,
        since_epoch.subsec_micros()
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's published `civil_from_days` algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Day 1 to 31 and month 1 to 12, by the algorithm's construction.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let (day, month) = (
        (doy - (153 * mp + 2) / 5 + 1) as u32,
        if mp < 10 { mp + 3 } else { mp - 9 } as u32,
    );
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn names_are_sorted_and_unique() {
        let names: Vec<&str> = Counters::default().fields().map(|(n, _)| n).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
    }

    #[test]
    fn pairs_leave_out_zeros() {
        let c = Counters {
            a_lock: 12,
            a_data: 3,
            requests_in: 98231,
            ..Counters::default()
        };
        assert_eq!(format_pairs(&c), "AData: 3, ALock: 12, In: 98231");
        assert_eq!(format_pairs(&Counters::default()), "");
    }

    #[test]
    fn since_subtracts_all_but_gauges() {
        let earlier = Counters {
            lock: 5,
            a_lock: 9,
            memory_max: 120,
            ..Counters::default()
        };
        let later = Counters {
            lock: 8,
            a_lock: 2,
            memory_max: 125,
            ..Counters::default()
        };
        let delta = later.since(&earlier);
        assert_eq!((delta.lock, delta.a_lock, delta.memory_max), (3, 2, 125));
    }

    #[test]
    fn memory_max_has_two_decimals() {
        let c = Counters {
            memory_max: 125,
            lock: 2,
            ..Counters::default()
        };
        assert_eq!(format_pairs(&c), "Lock: 2, MemoryMax: 1.25");
        assert_eq!(Figure::Hundredths(7).to_string(), "0.07");
        assert_eq!(Figure::Hundredths(10_000).to_string(), "100.00");
        assert_eq!(Figure::Count(7).to_string(), "7");
        let shown: Vec<_> = c.fields().filter(|(_, v)| v.raw() != 0).collect();
        assert_eq!(
            shown,
            [
                ("Lock", Figure::Count(2)),
                ("MemoryMax", Figure::Hundredths(125))
            ]
        );
    }

    #[test]
    fn an_interval_line_is_never_without_pairs() {
        assert_eq!(interval_pairs(&Counters::default()), "Idle: 0");
        let idle = Counters {
            idle: 120,
            ..Counters::default()
        };
        assert_eq!(interval_pairs(&idle), "Idle: 120");
    }

    #[test]
    fn local_time_is_the_offset_applied() {
        let t = UNIX_EPOCH + Duration::from_micros(1_764_165_600_000_123);
        assert_eq!(timestamp_at_offset(t, 3600), "2025-11-26 15:00:00.000123");
        assert_eq!(
            timestamp_at_offset(t, -5 * 3600),
            "2025-11-26 09:00:00.000123"
        );
    }

    #[test]
    fn timestamps() {
        let t = UNIX_EPOCH + Duration::from_micros(1_764_165_600_000_123);
        assert_eq!(timestamp(t), "2025-11-26 14:00:00.000123");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01 00:00:00.000000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&timestamp(leap)[..10], "2000-02-29");
    }
}
