//! A held lock as a value: [`LockGuard`] releases it when it goes away.

use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};

use super::{Error, FencingToken, Locker};

/// A hold on a lock, released when the guard is dropped, including while a
/// panic unwinds. Made by [`Locker::lock_guard`].
///
/// It dereferences to its [`Locker`], so the data item can be read and
/// written while the lock is held. Dropping cannot report a failed release
/// (the hold then ends when its TTL runs out); call
/// [`unlock`](LockGuard::unlock) to see the outcome.
///
/// ```no_run
/// use std::time::Duration;
/// use jackrabbit_dlm::client::Locker;
///
/// let mut locker = Locker::builder("report").build()?;
/// let guard = locker.lock_guard(Duration::from_secs(30))?;
/// println!("fencing token {:?}", guard.token());
/// guard.unlock()?; // or let it drop
/// # Ok::<(), jackrabbit_dlm::client::Error>(())
/// ```
#[derive(Debug)]
pub struct LockGuard<'a> {
    locker: &'a mut Locker,
    token: Option<FencingToken>,
}

impl<'a> LockGuard<'a> {
    pub(crate) fn new(locker: &'a mut Locker, token: Option<FencingToken>) -> LockGuard<'a> {
        LockGuard { locker, token }
    }

    /// The fencing token of this hold (`None` from a server without
    /// fencing tokens, such as upstream's).
    pub fn token(&self) -> Option<FencingToken> {
        self.token
    }

    /// Releases the lock now and reports how that went, as
    /// [`Locker::unlock`] does.
    pub fn unlock(self) -> Result<bool, Error> {
        // The release happens here; the drop must not do it again.
        let mut this = ManuallyDrop::new(self);
        this.locker.unlock()
    }
}

impl Deref for LockGuard<'_> {
    type Target = Locker;

    fn deref(&self) -> &Locker {
        self.locker
    }
}

impl DerefMut for LockGuard<'_> {
    fn deref_mut(&mut self) -> &mut Locker {
        self.locker
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // Nowhere to report a failure from a drop; the TTL ends the hold.
        let _ = self.locker.unlock();
    }
}
