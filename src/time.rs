//! Time as the store and the session see it: whole milliseconds on a clock
//! that the caller drives.
//!
//! Pure: nothing here reads a clock. The reactor turns its monotonic clock
//! into [`Moment`]s; tests and fuzzers make them up. Two types keep the two
//! meanings of "a number of milliseconds" apart: a [`Millis`] is a span (a
//! TTL, a `Wait`), a [`Moment`] a point on the clock (now, a deadline).
//! Arithmetic saturates: a deadline past the end of time is the end of time,
//! never a wrap to the past.

use std::fmt;

/// A span of time in whole milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(u64);

impl Millis {
    /// No time at all.
    pub const ZERO: Millis = Millis(0);

    /// `ms` milliseconds.
    pub const fn new(ms: u64) -> Millis {
        Millis(ms)
    }

    /// `secs` whole seconds (saturating).
    pub const fn from_secs(secs: u64) -> Millis {
        Millis(secs.saturating_mul(1000))
    }

    /// The span in milliseconds.
    pub const fn as_ms(self) -> u64 {
        self.0
    }

    /// Whether the span is empty.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

/// A point on the caller's clock, in milliseconds since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Moment(u64);

impl Moment {
    /// The clock's start.
    pub const START: Moment = Moment(0);

    /// `ms` milliseconds after the clock's start.
    pub const fn from_ms(ms: u64) -> Moment {
        Moment(ms)
    }

    /// Milliseconds since the clock's start.
    pub const fn as_ms(self) -> u64 {
        self.0
    }

    /// `span` later (saturating at the end of time).
    pub const fn after(self, span: Millis) -> Moment {
        Moment(self.0.saturating_add(span.0))
    }

    /// The time from `earlier` to `self` (zero if `earlier` is later).
    pub const fn since(self, earlier: Moment) -> Millis {
        Millis(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t={} ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        let late = Moment::from_ms(u64::MAX - 1);
        assert_eq!(late.after(Millis::new(5)), Moment::from_ms(u64::MAX));
        assert_eq!(Moment::START.since(late), Millis::ZERO);
        assert_eq!(late.since(Moment::START), Millis::new(u64::MAX - 1));
        assert_eq!(Millis::from_secs(u64::MAX), Millis::new(u64::MAX));
        assert_eq!(Millis::from_secs(3), Millis::new(3000));
    }
}
