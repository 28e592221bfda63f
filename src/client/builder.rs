//! [`LockerBuilder`]: a [`Locker`]'s settings, with the defaults of the
//! Python client. The setters are the ones every client builder shares
//! (`setup.rs`).

use std::fmt;

use super::Locker;
use super::error::Error;
use super::setup::{Settings, settings_setters};

/// Configures a [`Locker`]; made by [`Locker::builder`].
pub struct LockerBuilder {
    name: String,
    settings: Settings,
    limit: Option<u32>,
}

impl fmt::Debug for LockerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockerBuilder")
            .field("name", &self.name)
            .field("id", &self.settings.id)
            .field("endpoints", &self.settings.endpoints)
            .finish_non_exhaustive()
    }
}

impl LockerBuilder {
    /// The defaults, for the lock (and data item) `name`.
    pub(super) fn new(name: String) -> LockerBuilder {
        LockerBuilder {
            name,
            settings: Settings::new(),
            limit: None,
        }
    }

    settings_setters!();

    /// The `Limit` of this locker's shared requests
    /// ([`lock_shared`](Locker::lock_shared)): at most `limit` holders at
    /// once, a counting semaphore. Every holder must ask with the same
    /// limit (the server answers `NotOwner` to another). Default: none, the
    /// server's `--max-holders`.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The locker. It connects on its first request.
    ///
    /// Fails if no ID was given and the operating system's random source
    /// cannot provide one, or if the authentication settings cannot work
    /// (see [`name`](Self::name)).
    pub fn build(self) -> Result<Locker, Error> {
        let (setup, codec) = self.settings.finish()?;
        let mut locker = Locker::new(self.name, setup, codec);
        locker.limit = self.limit;
        Ok(locker)
    }
}
