//! The table of fighting modes.
//!
//! A mode is a row of independent choices: how a fighter's connection lives,
//! how many requests it keeps in flight, and what it does when a lock is
//! refused. The engine and the fighters only read these choices, never the
//! mode's name, so a new mode is a new row.

use std::fmt;

/// A fighting mode, as chosen with `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A new TCP connection per request, closed after its reply (like the Python client)
    Oneshot,
    /// One connection per fighter, one request in flight; a refused fighter picks another resource
    Persistent,
    /// One connection per fighter, --pipeline requests written before the replies are read
    Pipelined,
    /// Like persistent, but a refused fighter sleeps --retry-delay-ms and retries the same resource
    Patient,
    /// Like persistent, but a refused fighter retries the same resource at once
    Aggressive,
    /// Per request a random mix: new or kept connection, give up, sleep or retry at once
    Chaos,
    /// Like persistent, but Lock carries Wait (--wait): the server queues it until the lock is free
    Wait,
    /// Readers and writers, with Wait: --shared-percent of the cycles take a share, the rest the lock
    Rw,
    /// A semaphore fight, with Wait: every Lock is a share with Limit --limit
    Semaphore,
}

/// What happens to the connection after a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconnect {
    /// It is kept for the next request.
    Never,
    /// It is closed; the next request opens a new one.
    EveryRequest,
    /// A coin decides, request by request.
    Sometimes,
}

/// What a fighter does when its `Lock` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRefusal {
    /// Picks another resource at random and locks that.
    GiveUp,
    /// Sleeps `--retry-delay`, then asks for the same resource again.
    RetryLater,
    /// Asks for the same resource again at once.
    RetryNow,
    /// One of the three above, chosen at random each time.
    Any,
}

/// In which mode a fighter's `Lock`s ask for the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Every `Lock` is exclusive (no `Mode`).
    Exclusive,
    /// `--shared-percent` of the cycles take a share, the rest the lock.
    Mixed,
    /// Every `Lock` takes a share, with `Limit` `--limit`.
    Semaphore,
}

/// One row of the mode table.
#[derive(Debug)]
pub struct ModeSpec {
    pub mode: Mode,
    pub reconnect: Reconnect,
    /// Whether `--pipeline` applies; otherwise one request is in flight.
    pub pipelined: bool,
    pub on_refusal: OnRefusal,
    /// Whether `Lock` carries `Wait` (the waiting-acquire extension).
    pub waits: bool,
    /// Exclusive locks, or shares too (the shared-locks extension).
    pub sharing: Sharing,
}

/// Every mode, in the order `--help` lists them.
pub const MODES: &[ModeSpec] = &[
    ModeSpec {
        mode: Mode::Oneshot,
        reconnect: Reconnect::EveryRequest,
        pipelined: false,
        on_refusal: OnRefusal::GiveUp,
        waits: false,
        sharing: Sharing::Exclusive,
    },
    ModeSpec {
        mode: Mode::Persistent,
        reconnect: Reconnect::Never,
        pipelined: false,
        on_refusal: OnRefusal::GiveUp,
        waits: false,
        sharing: Sharing::Exclusive,
    },
    ModeSpec {
        mode: Mode::Pipelined,
        reconnect: Reconnect::Never,
        pipelined: true,
        on_refusal: OnRefusal::GiveUp,
        waits: false,
        sharing: Sharing::Exclusive,
    },
    ModeSpec {
        mode: Mode::Patient,
        reconnect: Reconnect::Never,
        pipelined: false,
        on_refusal: OnRefusal::RetryLater,
        waits: false,
        sharing: Sharing::Exclusive,
    },
    ModeSpec {
        mode: Mode::Aggressive,
        reconnect: Reconnect::Never,
        pipelined: false,
        on_refusal: OnRefusal::RetryNow,
        waits: false,
        sharing: Sharing::Exclusive,
    },
    ModeSpec {
        mode: Mode::Chaos,
        reconnect: Reconnect::Sometimes,
        pipelined: false,
        on_refusal: OnRefusal::Any,
        waits: false,
        sharing: Sharing::Exclusive,
    },
    ModeSpec {
        mode: Mode::Wait,
        reconnect: Reconnect::Never,
        pipelined: false,
        // A refusal here means the wait ran out; the fighter moves on.
        on_refusal: OnRefusal::GiveUp,
        waits: true,
        sharing: Sharing::Exclusive,
    },
    ModeSpec {
        mode: Mode::Rw,
        reconnect: Reconnect::Never,
        pipelined: false,
        on_refusal: OnRefusal::GiveUp,
        waits: true,
        sharing: Sharing::Mixed,
    },
    ModeSpec {
        mode: Mode::Semaphore,
        reconnect: Reconnect::Never,
        pipelined: false,
        on_refusal: OnRefusal::GiveUp,
        waits: true,
        sharing: Sharing::Semaphore,
    },
];

impl Mode {
    /// This mode's row of [`MODES`].
    pub fn spec(self) -> &'static ModeSpec {
        MODES
            .iter()
            .find(|row| row.mode == self)
            .expect("every mode has a row in MODES")
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use clap::ValueEnum;
        match self.to_possible_value() {
            Some(v) => f.write_str(v.get_name()),
            None => write!(f, "{self:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn every_mode_has_exactly_one_row() {
        for mode in Mode::value_variants() {
            assert_eq!(
                MODES.iter().filter(|r| r.mode == *mode).count(),
                1,
                "{mode}"
            );
        }
        assert_eq!(MODES.len(), Mode::value_variants().len());
    }

    #[test]
    fn names_are_lowercase() {
        assert_eq!(Mode::Oneshot.to_string(), "oneshot");
        assert_eq!(Mode::Aggressive.to_string(), "aggressive");
    }
}
