//! [`RenewingGuard`]: a hold kept alive by its own thread, the one renewal
//! implementation of the crate (`dlm run` uses it too).
//!
//! A guard renews in the mode its hold was taken in: an exclusive hold with
//! an exclusive `Lock`, a share with a shared one carrying the same `Limit`
//! (PROTOCOL.md: the same ID asking again in the mode it holds resets the
//! TTL and keeps the token). It never converts a hold: a renewal in the
//! other mode would be a conversion, with a new token.
//!
//! The thread has its own connection, so a renewal never queues behind the
//! caller's requests (a parked `Lock` with `Wait` on the caller's
//! connection would hold its reply back), and it renews every `expire / 3`.
//! The hold counts as lost, once and for good, when:
//!
//! - a renewal is refused (`NotOwner`: the hold ran out and another ID has
//!   the lock, or the server answered another refusal);
//! - a renewal is granted as a new hold (a new token: the server forgot the
//!   old hold, say by restarting, and another ID may have held the lock in
//!   between);
//! - renewals have failed on the network (or a cluster answered
//!   `Unavailable`) for longer than `expire` since the last that was
//!   granted, counted from when that request was sent, so the hold has
//!   certainly run out.
//!
//! Then the guard's flag turns, every channel from
//! [`RenewingGuard::lost_channel`] gets the reason, and every callback from
//! [`RenewingGuard::on_lost`] runs (on the renewal thread).

use std::fmt;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::answer;
use super::connection::Link;
use super::error::Error;
use super::setup::Setup;
use super::{FencingToken, Status};
use crate::protocol::action::Action;

/// How soon to try a renewal again after the server could not be reached.
const RENEW_RETRY: Duration = Duration::from_millis(200);

/// Why a [`RenewingGuard`] lost its hold.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lost {
    /// A renewal was answered `NotOwner`: the hold had run out and another
    /// ID holds the lock (for a share: an exclusive holder, or the limit's
    /// worth of other shares, or shares under another `Limit`).
    Taken,
    /// A renewal was granted as a new hold, with this token: the server had
    /// forgotten the old hold (it restarted, say), so another ID may have
    /// held the lock in between. The new hold is released.
    Replaced(Option<FencingToken>),
    /// No renewal got through for longer than the TTL; the last error.
    Unreachable(String),
    /// A renewal was refused for another reason; the error.
    Refused(String),
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lost::Taken => write!(f, "the hold ran out and another ID took the lock"),
            Lost::Replaced(_) => write!(
                f,
                "the server granted a new hold: it had forgotten the old one"
            ),
            Lost::Unreachable(why) => {
                write!(f, "no renewal got through before the TTL ran out: {why}")
            }
            Lost::Refused(why) => write!(f, "a renewal was refused: {why}"),
        }
    }
}

type Callback = Box<dyn FnOnce(&Lost) + Send>;

/// What the guard and its thread share.
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    lost: Option<Lost>,
    channels: Vec<Sender<Lost>>,
    callbacks: Vec<Callback>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the loss and tells everyone who asked.
    fn lose(&self, lost: Lost) {
        let (channels, callbacks) = {
            let mut state = self.state();
            state.lost = Some(lost.clone());
            (
                std::mem::take(&mut state.channels),
                std::mem::take(&mut state.callbacks),
            )
        };
        // Callbacks first: whoever hears of the loss on a channel or
        // through the flag can count on every callback having run.
        for callback in callbacks {
            callback(&lost);
        }
        self.changed.notify_all();
        for channel in channels {
            let _ = channel.send(lost.clone());
        }
    }
}

/// A lock held and renewed every TTL/3 by a thread of its own, released when
/// the guard is dropped or [`release`](RenewingGuard::release)d.
///
/// Made by [`Locker::lock_renewing`](super::Locker::lock_renewing),
/// [`Locker::keep_renewed`](super::Locker::keep_renewed),
/// [`Client::lock_renewing`](super::Client::lock_renewing) and
/// [`Handle::lock_renewing`](super::Handle::lock_renewing). It is `Send`, so
/// it can travel with the work it protects.
///
/// ```no_run
/// use std::time::Duration;
/// use jackrabbit_dlm::client::Client;
///
/// let client = Client::builder().build()?;
/// let guard = client.lock_renewing("nightly-report", Duration::from_secs(30))?;
/// guard.on_lost(|why| eprintln!("stop writing: {why}"));
/// for chunk in 0..1000 {
///     if !guard.is_held() {
///         break; // another ID may hold it now
///     }
///     // ... write chunk, tagged with guard.token() ...
/// #   let _ = chunk;
/// }
/// guard.release()?;
/// # Ok::<(), jackrabbit_dlm::client::Error>(())
/// ```
pub struct RenewingGuard {
    name: String,
    token: Option<FencingToken>,
    mode: Renewal,
    shared: Arc<Shared>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<Result<bool, Error>>>,
}

impl fmt::Debug for RenewingGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenewingGuard")
            .field("name", &self.name)
            .field("token", &self.token)
            .field("mode", &self.mode)
            .field("lost", &self.lost())
            .finish_non_exhaustive()
    }
}

/// The mode a [`RenewingGuard`] renews its hold in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Renewal {
    /// An exclusive hold: `Lock` without `Mode`.
    Exclusive,
    /// A share: `Lock` with `"Mode":"Shared"` and this `Limit`, if any
    /// (renewals must carry the limit the share was granted under).
    Shared(Option<u32>),
}

impl Renewal {
    /// The `shared` field of a request renewing in this mode.
    fn shared(self) -> Option<Option<u32>> {
        match self {
            Renewal::Exclusive => None,
            Renewal::Shared(limit) => Some(limit),
        }
    }
}

impl RenewingGuard {
    /// Starts renewing the exclusive hold of `setup`'s ID on `name` that was
    /// granted (with `token`) in reply to a request sent at `sent_at`.
    pub(crate) fn start(
        setup: Setup,
        name: String,
        token: Option<FencingToken>,
        expire: Duration,
        sent_at: Instant,
    ) -> Result<RenewingGuard, Error> {
        RenewingGuard::start_in(setup, name, token, expire, sent_at, Renewal::Exclusive)
    }

    /// Starts renewing a hold of `setup`'s ID on `name` in `mode`, granted
    /// (with `token`) in reply to a request sent at `sent_at`.
    pub(crate) fn start_in(
        setup: Setup,
        name: String,
        token: Option<FencingToken>,
        expire: Duration,
        sent_at: Instant,
        mode: Renewal,
    ) -> Result<RenewingGuard, Error> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                lost: None,
                channels: Vec::new(),
                callbacks: Vec::new(),
            }),
            changed: Condvar::new(),
        });
        let (stop, stopped) = mpsc::channel();
        let renewer = Renewer {
            // A renewal that waits longer than a third of the TTL for its
            // reply leaves too little time for the next try.
            link: setup.link_with(setup.timeout.min(expire / 3).max(Duration::from_millis(1))),
            setup,
            name: name.clone(),
            token,
            mode,
            expire,
            held_until: sent_at + expire,
            shared: Arc::clone(&shared),
        };
        let thread = thread::Builder::new()
            .name(format!("dlm-renew {name}"))
            .spawn(move || renewer.run(&stopped, sent_at))
            .map_err(|e| Error::io("this process".to_owned(), "start a renewal thread in", e))?;
        Ok(RenewingGuard {
            name,
            token,
            mode,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The hold's fencing token (`None` from a server without fencing
    /// tokens, such as upstream's). It never changes: a renewal granted
    /// with another token is a loss.
    pub fn token(&self) -> Option<FencingToken> {
        self.token
    }

    /// Whether the hold is a share (renewed in `"Mode":"Shared"`), not an
    /// exclusive hold.
    pub fn is_shared(&self) -> bool {
        matches!(self.mode, Renewal::Shared(_))
    }

    /// The `Limit` a share is renewed with (`None` for an exclusive hold or
    /// a share without a limit).
    pub fn limit(&self) -> Option<u32> {
        match self.mode {
            Renewal::Shared(limit) => limit,
            Renewal::Exclusive => None,
        }
    }

    /// Whether the hold is still held, as far as the renewals show.
    pub fn is_held(&self) -> bool {
        self.shared.state().lost.is_none()
    }

    /// Why the hold was lost, once it was.
    pub fn lost(&self) -> Option<Lost> {
        self.shared.state().lost.clone()
    }

    /// Waits up to `timeout` for the hold to be lost; `None` if it is still
    /// held then.
    pub fn wait_lost(&self, timeout: Duration) -> Option<Lost> {
        let state = self.shared.state();
        let (state, _) = self
            .shared
            .changed
            .wait_timeout_while(state, timeout, |s| s.lost.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        state.lost.clone()
    }

    /// A channel that receives the reason once, when the hold is lost (at
    /// once if it already was).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use jackrabbit_dlm::client::Locker;
    /// # let mut locker = Locker::builder("jobs").build()?;
    /// let guard = locker.lock_renewing(Duration::from_secs(30))?;
    /// let lost = guard.lost_channel();
    /// std::thread::spawn(move || {
    ///     if let Ok(why) = lost.recv() {
    ///         eprintln!("lost the lock: {why}");
    ///     }
    /// });
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn lost_channel(&self) -> Receiver<Lost> {
        let (sender, receiver) = mpsc::channel();
        let mut state = self.shared.state();
        match &state.lost {
            Some(lost) => {
                let _ = sender.send(lost.clone());
            }
            None => state.channels.push(sender),
        }
        receiver
    }

    /// Runs `callback` once, when the hold is lost (on the renewal thread;
    /// at once, on this thread, if it already was).
    pub fn on_lost(&self, callback: impl FnOnce(&Lost) + Send + 'static) {
        let mut state = self.shared.state();
        match state.lost.clone() {
            Some(lost) => {
                drop(state);
                callback(&lost);
            }
            None => state.callbacks.push(Box::new(callback)),
        }
    }

    /// Stops renewing and releases the lock. Returns `true` if it was
    /// released, `false` if there was nothing to release (the hold was
    /// lost, or had run out); fails as `Unlock` does.
    pub fn release(mut self) -> Result<bool, Error> {
        self.finish()
    }

    fn finish(&mut self) -> Result<bool, Error> {
        drop(self.stop.take());
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(Error::protocol("the renewal thread panicked"))),
            None => Ok(false),
        }
    }
}

impl Drop for RenewingGuard {
    fn drop(&mut self) {
        // Nowhere to report a failure from a drop; the TTL ends the hold.
        let _ = self.finish();
    }
}

/// The renewal thread's state.
struct Renewer {
    link: Link,
    setup: Setup,
    name: String,
    token: Option<FencingToken>,
    mode: Renewal,
    expire: Duration,
    /// When the hold certainly ends unless renewed.
    held_until: Instant,
    shared: Arc<Shared>,
}

impl Renewer {
    /// Renews until told to stop (the guard's sender is dropped), then
    /// releases the lock if it is still held.
    fn run(mut self, stopped: &Receiver<()>, granted: Instant) -> Result<bool, Error> {
        let every = self.expire / 3;
        let mut next = granted + every;
        let mut held = true;
        loop {
            let wait = if held {
                next.saturating_duration_since(Instant::now())
            } else {
                Duration::MAX
            };
            match stopped.recv_timeout(wait) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            }
            let sent_at = Instant::now();
            match self.renew(sent_at) {
                Ok(()) => {
                    self.held_until = sent_at + self.expire;
                    next = sent_at + every;
                }
                Err(None) => next = sent_at + RENEW_RETRY.min(every),
                Err(Some(lost)) => {
                    held = false;
                    self.shared.lose(lost);
                }
            }
        }
        if held { self.unlock() } else { Ok(false) }
    }

    /// One renewal: `Ok` if granted with the same token, `Err(None)` to try
    /// again soon, `Err(Some(why))` if the hold is lost.
    fn renew(&mut self, sent_at: Instant) -> Result<(), Option<Lost>> {
        let request = super::wire::Request {
            expire: Some(self.expire),
            shared: self.mode.shared(),
            ..self.setup.request(Action::Lock, &self.name)
        };
        let outcome = self
            .link
            .round_trip(&request, self.setup.encoding)
            .and_then(|reply| answer::locked(reply, &self.name));
        match outcome {
            Ok(token) if token == self.token => Ok(()),
            Ok(token) => {
                let _ = self.unlock();
                Err(Some(Lost::Replaced(token)))
            }
            Err(e) if e.is_not_owner() => Err(Some(Lost::Taken)),
            Err(e) if e.is_io() || e.status() == Some(Status::Unavailable) => {
                if sent_at < self.held_until {
                    Err(None)
                } else {
                    Err(Some(Lost::Unreachable(e.to_string())))
                }
            }
            Err(e) => Err(Some(Lost::Refused(e.to_string()))),
        }
    }

    fn unlock(&mut self) -> Result<bool, Error> {
        let request = self.setup.request(Action::Unlock, &self.name);
        self.link
            .round_trip(&request, self.setup.encoding)
            .and_then(|reply| answer::unlocked(reply, &self.name))
    }
}
