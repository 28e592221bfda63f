//! [`Locker`]: one lock and the data item of the same name, as method calls.
//!
//! Each method is one request (or, for [`Locker::lock`], a patient series of
//! them) and turns the server's status into a result. What goes on the wire
//! is `wire`'s business, and when a request may be sent again is
//! `connection`'s; this module only decides what each answer means and what
//! the locker remembers of it (the token of its current hold).

use std::collections::BTreeMap;
use std::fmt;
use std::thread;
use std::time::{Duration, Instant};

use super::answer;
use super::builder::LockerBuilder;
use super::codec::ErasedCodec;
use super::connection::Link;
use super::guard::LockGuard;
use super::handles::worth_retrying;
use super::renew::{Renewal, RenewingGuard};
use super::setup::Setup;
use super::wire::{Reply, Request};
use super::{Error, FencingToken, Membership, Status};
use crate::protocol::action::Action;

/// A client for one lock and the data item of the same name.
///
/// Built with [`Locker::builder`]. Every request carries the locker's ID,
/// which owns whatever the locker locks or stores; another `Locker` with the
/// same ID is the same owner as far as the server is concerned.
pub struct Locker {
    name: String,
    setup: Setup,
    codec: Box<dyn ErasedCodec>,
    token: Option<FencingToken>,
    link: Link,
    /// The `Limit` of shared requests (see [`LockerBuilder::limit`]).
    pub(super) limit: Option<u32>,
}

impl fmt::Debug for Locker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Locker")
            .field("name", &self.name)
            .field("id", &self.setup.id)
            .field("server", &self.link.server())
            .field("encoding", &self.setup.encoding)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl Locker {
    /// Starts building a locker for the lock (and data item) `name`.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use jackrabbit_dlm::client::{Base64, Encoding, Locker};
    ///
    /// // Like the Python client's Locker("jobs", Retry=7, RetrySleep=1),
    /// // with binary values stored as base64 and table-encoded lines.
    /// let mut jobs = Locker::builder("jobs")
    ///     .host("dlm.internal")
    ///     .port(37373)
    ///     .retries(7)
    ///     .retry_sleep(Duration::from_secs(1))
    ///     .timeout(Duration::from_secs(5))
    ///     .encoding(Encoding::Table)
    ///     .codec(Base64)
    ///     .build()?;
    /// jobs.put([0u8, 255, 7], Duration::from_secs(60))?;
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn builder(name: impl Into<String>) -> LockerBuilder {
        LockerBuilder::new(name.into())
    }

    /// A locker from a finished builder's parts; it connects on its first
    /// request.
    pub(super) fn new(name: String, setup: Setup, codec: Box<dyn ErasedCodec>) -> Locker {
        Locker {
            name,
            link: setup.link(),
            setup,
            codec,
            token: None,
            limit: None,
        }
    }

    /// The lock's (and data item's) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The ID this locker acts as.
    pub fn id(&self) -> &str {
        &self.setup.id
    }

    /// The fencing token of the current hold, if this locker holds the lock
    /// as far as it knows (it learns otherwise from the server's answers,
    /// not from the clock) and the server hands out tokens (upstream's
    /// does not).
    pub fn token(&self) -> Option<FencingToken> {
        self.token
    }

    /// Takes or renews the lock for `expire`, patiently: a connection failure
    /// or `NotOwner` is retried up to the configured number of times, with
    /// the configured sleep in between. Returns the hold's fencing token
    /// (`None` from a server without the fencing-token extension, such as
    /// upstream's).
    ///
    /// Renewing a hold this ID already has resets its TTL and keeps its
    /// token.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use jackrabbit_dlm::client::{Locker, Status};
    /// # let mut locker = Locker::builder("jobs").build()?;
    /// let token = locker.lock(Duration::from_secs(30))?;
    /// assert_eq!(locker.token(), token);
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn lock(&mut self, expire: Duration) -> Result<Option<FencingToken>, Error> {
        let mut retries_left = self.setup.retries;
        loop {
            match self.try_lock(expire) {
                Err(e) if retries_left > 0 && worth_retrying(&e) => {
                    retries_left -= 1;
                    thread::sleep(self.setup.retry_sleep);
                }
                outcome => return outcome,
            }
        }
    }

    /// Takes or renews the lock for `expire` with a single request: fails at
    /// once with `NotOwner` if another ID holds it.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use jackrabbit_dlm::client::{Locker, Status};
    /// # let mut locker = Locker::builder("jobs").build()?;
    /// match locker.try_lock(Duration::from_secs(30)) {
    ///     Ok(token) => println!("ours, token {token:?}"),
    ///     Err(e) if e.is_not_owner() => println!("busy, try later"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn try_lock(&mut self, expire: Duration) -> Result<Option<FencingToken>, Error> {
        self.acquire(expire, None)
    }

    /// Takes or renews the lock for `expire`, waiting up to `wait` while
    /// another ID holds it: the server parks the request in the lock's
    /// first-come-first-served queue and grants it (with a new token) as
    /// soon as the lock is released or expires. Fails with `NotOwner` when
    /// `wait` runs out, with `BadPayload` when `wait` is above the server's
    /// maximum TTL. A zero `wait` is [`try_lock`](Locker::try_lock).
    ///
    /// Uses the server's `Wait` extension: one request, no polling. The
    /// reply timeout is extended by `wait`.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use jackrabbit_dlm::client::Locker;
    /// # let mut locker = Locker::builder("jobs").build()?;
    /// // Queue for up to 10 s, then hold for 30 s.
    /// let token = locker.lock_wait(Duration::from_secs(30), Duration::from_secs(10))?;
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn lock_wait(
        &mut self,
        expire: Duration,
        wait: Duration,
    ) -> Result<Option<FencingToken>, Error> {
        self.acquire(expire, Some(wait).filter(|w| !w.is_zero()))
    }

    /// Takes or renews a share of the lock for `expire` (`"Mode":"Shared"`,
    /// with the builder's [`limit`](super::LockerBuilder::limit)): beside
    /// other shared holders, up to the lock's limit, never beside an
    /// exclusive one. Patient like [`lock`](Locker::lock). An exclusive hold
    /// of this ID converts to a share (a new token), and
    /// [`lock`](Locker::lock) converts a share back when this ID is the only
    /// holder.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use jackrabbit_dlm::client::Locker;
    /// // At most 4 of these at once, across machines.
    /// let mut slot = Locker::builder("render-farm").limit(4).build()?;
    /// let token = slot.lock_shared(Duration::from_secs(30))?;
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn lock_shared(&mut self, expire: Duration) -> Result<Option<FencingToken>, Error> {
        let mut retries_left = self.setup.retries;
        loop {
            match self.try_lock_shared(expire) {
                Err(e) if retries_left > 0 && worth_retrying(&e) => {
                    retries_left -= 1;
                    thread::sleep(self.setup.retry_sleep);
                }
                outcome => return outcome,
            }
        }
    }

    /// A share of the lock with a single request, as
    /// [`try_lock`](Locker::try_lock) is for an exclusive hold.
    pub fn try_lock_shared(&mut self, expire: Duration) -> Result<Option<FencingToken>, Error> {
        self.acquire_in(expire, None, Some(self.limit))
    }

    /// A share of the lock, waiting up to `wait` in the lock's queue, as
    /// [`lock_wait`](Locker::lock_wait) does: the queue is first come first
    /// served for both modes, so a share never overtakes an exclusive
    /// request waiting ahead of it.
    pub fn lock_shared_wait(
        &mut self,
        expire: Duration,
        wait: Duration,
    ) -> Result<Option<FencingToken>, Error> {
        self.acquire_in(
            expire,
            Some(wait).filter(|w| !w.is_zero()),
            Some(self.limit),
        )
    }

    /// A share taken like [`lock_shared`](Locker::lock_shared), as a guard
    /// that ends this ID's share (and only it) when dropped.
    pub fn lock_shared_guard(&mut self, expire: Duration) -> Result<LockGuard<'_>, Error> {
        let token = self.lock_shared(expire)?;
        Ok(LockGuard::new(self, token))
    }

    /// One `Lock` request, with the `Wait` extension if `wait` is given.
    fn acquire(
        &mut self,
        expire: Duration,
        wait: Option<Duration>,
    ) -> Result<Option<FencingToken>, Error> {
        self.acquire_in(expire, wait, None)
    }

    /// One `Lock` request: shared (with its `Limit`, if any) when `shared`
    /// is given, else exclusive.
    fn acquire_in(
        &mut self,
        expire: Duration,
        wait: Option<Duration>,
        shared: Option<Option<u32>>,
    ) -> Result<Option<FencingToken>, Error> {
        let request = Request {
            expire: Some(expire),
            wait,
            shared,
            ..self.setup.request(Action::Lock, &self.name)
        };
        let reply = self.link.round_trip(&request, self.setup.encoding)?;
        let outcome = answer::locked(reply, &self.name);
        match &outcome {
            Ok(token) => self.token = *token,
            Err(e) if e.is_not_owner() => self.token = None,
            Err(_) => {}
        }
        outcome
    }

    /// Takes the lock patiently, like [`lock`](Locker::lock), and returns a
    /// guard that releases it when dropped (also while unwinding from a
    /// panic). The guard dereferences to the locker, so the data item can be
    /// used while holding it.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use jackrabbit_dlm::client::{Locker, Status};
    /// # let mut locker = Locker::builder("jobs").build()?;
    /// let mut guard = locker.lock_guard(Duration::from_secs(30))?;
    /// let token = guard.token();
    /// guard.put(format!("written under token {token:?}"), Duration::from_secs(60))?;
    /// drop(guard); // released
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn lock_guard(&mut self, expire: Duration) -> Result<LockGuard<'_>, Error> {
        let token = self.lock(expire)?;
        Ok(LockGuard::new(self, token))
    }

    /// Takes the lock patiently, like [`lock`](Locker::lock), and keeps it
    /// renewed every `expire / 3` on a thread with its own connection:
    /// see [`RenewingGuard`]. This locker stays free for other requests.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use jackrabbit_dlm::client::Locker;
    /// let mut locker = Locker::builder("backup").build()?;
    /// let guard = locker.lock_renewing(Duration::from_secs(30))?;
    /// // ... an hour of work; check guard.is_held() before each step ...
    /// guard.release()?;
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn lock_renewing(&mut self, expire: Duration) -> Result<RenewingGuard, Error> {
        let sent_at = Instant::now();
        self.lock(expire)?;
        self.renew_from(expire, sent_at)
    }

    /// Hands the hold this locker has (from [`lock_wait`](Locker::lock_wait),
    /// say) to a renewal thread, which renews it every `expire / 3` and
    /// releases it when the guard goes: see [`RenewingGuard`]. The locker
    /// forgets its token. If the locker holds nothing, the first renewal
    /// takes the lock if it is free, and the guard reports it lost if not.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use jackrabbit_dlm::client::Locker;
    /// let mut locker = Locker::builder("deploy").build()?;
    /// let expire = Duration::from_secs(30);
    /// locker.lock_wait(expire, Duration::from_secs(600))?; // queue up to 10 minutes
    /// let guard = locker.keep_renewed(expire)?;
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn keep_renewed(&mut self, expire: Duration) -> Result<RenewingGuard, Error> {
        self.renew_from(expire, Instant::now())
    }

    /// Takes a share patiently, like [`lock_shared`](Locker::lock_shared),
    /// and keeps it renewed every `expire / 3` (shared requests with the
    /// builder's [`limit`](super::LockerBuilder::limit)): see
    /// [`RenewingGuard`].
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use jackrabbit_dlm::client::Locker;
    /// // One of at most 4 renderers at once, across machines.
    /// let mut slot = Locker::builder("render-farm").limit(4).build()?;
    /// let guard = slot.lock_shared_renewing(Duration::from_secs(30))?;
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn lock_shared_renewing(&mut self, expire: Duration) -> Result<RenewingGuard, Error> {
        let sent_at = Instant::now();
        self.lock_shared(expire)?;
        self.renew_from_in(expire, sent_at, Renewal::Shared(self.limit))
    }

    /// Hands the share this locker holds (from
    /// [`lock_shared_wait`](Locker::lock_shared_wait), say) to a renewal
    /// thread, as [`keep_renewed`](Locker::keep_renewed) does for an
    /// exclusive hold: renewals are shared requests with the builder's
    /// limit, so they reset the share's TTL and keep its token.
    pub fn keep_renewed_shared(&mut self, expire: Duration) -> Result<RenewingGuard, Error> {
        self.renew_from_in(expire, Instant::now(), Renewal::Shared(self.limit))
    }

    fn renew_from(&mut self, expire: Duration, sent_at: Instant) -> Result<RenewingGuard, Error> {
        self.renew_from_in(expire, sent_at, Renewal::Exclusive)
    }

    fn renew_from_in(
        &mut self,
        expire: Duration,
        sent_at: Instant,
        mode: Renewal,
    ) -> Result<RenewingGuard, Error> {
        let token = self.token.take();
        RenewingGuard::start_in(
            self.setup.clone(),
            self.name.clone(),
            token,
            expire,
            sent_at,
            mode,
        )
    }

    /// Asks who holds the lock without changing anything: `Locked` (this
    /// ID), `Unlocked` (nobody) or `NotOwner` (another ID).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use jackrabbit_dlm::client::{Locker, Status};
    /// # let mut locker = Locker::builder("jobs").build()?;
    /// match locker.test_lock()? {
    ///     Status::Locked => println!("held by this ID"),
    ///     Status::Unlocked => println!("free"),
    ///     _ => println!("held by another ID"),
    /// }
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn test_lock(&mut self) -> Result<Status, Error> {
        let reply = self.request(Action::TestLock, None, None, None)?;
        let status = answer::tested(reply, &self.name)?;
        if status != Status::Locked {
            self.token = None;
        }
        Ok(status)
    }

    /// Releases the lock. Returns `true` if this ID held it, `false` if
    /// nobody did (it had expired); fails with `NotOwner` if another ID
    /// holds it.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use jackrabbit_dlm::client::{Locker, Status};
    /// # let mut locker = Locker::builder("jobs").build()?;
    /// locker.lock(Duration::from_secs(30))?;
    /// assert!(locker.unlock()?, "released a hold of ours");
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn unlock(&mut self) -> Result<bool, Error> {
        let reply = self.request(Action::Unlock, None, None, None)?;
        let outcome = answer::unlocked(reply, &self.name);
        if outcome.is_ok() || outcome.as_ref().is_err_and(Error::is_not_owner) {
            self.token = None;
        }
        outcome
    }

    /// Stores `value` (through the codec) as the data item for `expire`,
    /// creating it or replacing this ID's value and TTL. Fails with
    /// `NotOwner` if another ID owns the item, and with `NO` if the server's
    /// memory guard refuses it.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use jackrabbit_dlm::client::{Locker, Status};
    /// # let mut locker = Locker::builder("jobs").build()?;
    /// locker.put("v1", Duration::from_secs(60))?;
    /// assert_eq!(locker.get()?.as_deref(), Some(&b"v1"[..]));
    /// assert!(locker.erase()?);
    /// assert_eq!(locker.get()?, None);
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn put(&mut self, value: impl AsRef<[u8]>, expire: Duration) -> Result<(), Error> {
        let text = self
            .codec
            .encode_value(value.as_ref())
            .map_err(Error::codec)?;
        let reply = self.request(Action::Put, Some(expire), None, Some(&text))?;
        answer::stored(reply, &self.name)
    }

    /// Reads the data item, decoded by the codec: `None` if there is none.
    /// Fails with `NotOwner` if another ID owns it.
    pub fn get(&mut self) -> Result<Option<Vec<u8>>, Error> {
        let reply = self.request(Action::Get, None, None, None)?;
        answer::value(reply, &self.name, self.codec.as_ref())
    }

    /// Removes the data item. Returns `true` if it was there, `false` if not;
    /// fails with `NotOwner` if another ID owns it.
    pub fn erase(&mut self) -> Result<bool, Error> {
        let reply = self.request(Action::Erase, None, None, None)?;
        answer::erased(reply, &self.name)
    }

    /// The server's version string, e.g. `JackrabbitDLM/0.1.0`.
    pub fn version(&mut self) -> Result<String, Error> {
        let reply = self.request(Action::Version, None, None, None)?;
        answer::version(reply, &self.name)
    }

    /// Whether the server answers like a Jackrabbit DLM server. Any failure,
    /// including an unreachable server, is `false`.
    pub fn is_dlm(&mut self) -> bool {
        self.version().is_ok_and(|v| v.contains("JackrabbitDLM"))
    }

    /// The server's counters (`Lock`, `NotOwner`, `Connections`, ...) by
    /// name: the `Stats` extension.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use jackrabbit_dlm::client::{Locker, Status};
    /// # let mut locker = Locker::builder("jobs").build()?;
    /// println!("talking to {}", locker.version()?);
    /// println!("{} locks alive", locker.stats()?["ALock"]);
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn stats(&mut self) -> Result<BTreeMap<String, u64>, Error> {
        let reply = self.request(Action::Stats, None, None, None)?;
        answer::stats(reply, &self.name)
    }

    /// The cluster's members, as the member this locker talks to sees
    /// them (`Members`). Needs a Name given as `--admin` to the servers;
    /// `NotOwner` otherwise, `BadAction` from a server that is not a
    /// cluster member.
    pub fn members(&mut self) -> Result<Membership, Error> {
        let reply = self.admin(Action::Members, "members")?;
        answer::membership(reply, "members")
    }

    /// Adds member `id`, which listens for the others at `addr`
    /// (`HOST:PORT`), then start it with `--join`. Returns once the change
    /// is applied; `Unavailable` if it could not be within the commit
    /// timeout (for instance while another change is under way): asking
    /// again is safe.
    pub fn add_member(&mut self, id: u16, addr: &str) -> Result<(), Error> {
        let spec = format!("{id}={addr}");
        let reply = self.admin(Action::AddMember, &spec)?;
        answer::member_changed(reply, Action::AddMember, &spec)
    }

    /// Removes member `id` (stop it afterwards). As [`Locker::add_member`].
    pub fn remove_member(&mut self, id: u16) -> Result<(), Error> {
        let spec = id.to_string();
        let reply = self.admin(Action::RemoveMember, &spec)?;
        answer::member_changed(reply, Action::RemoveMember, &spec)
    }

    /// Sends one administration request naming `file_name` and reads its
    /// reply.
    fn admin(&mut self, action: Action, file_name: &str) -> Result<Reply, Error> {
        let request = self.setup.request(action, file_name);
        self.link.round_trip(&request, self.setup.encoding)
    }

    /// Sends one request for this locker's name and ID and reads its reply.
    fn request(
        &mut self,
        action: Action,
        expire: Option<Duration>,
        wait: Option<Duration>,
        data: Option<&str>,
    ) -> Result<Reply, Error> {
        let request = Request {
            expire,
            wait,
            data,
            ..self.setup.request(action, &self.name)
        };
        self.link.round_trip(&request, self.setup.encoding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_server_is_an_io_error_naming_it() {
        // A port that was free a moment ago: nothing listens there.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut locker = Locker::builder("x").port(port).build().unwrap();
        let err = locker.version().unwrap_err();
        assert!(err.is_io(), "{err}");
        let expected = format!("connect to 127.0.0.1:{port}:");
        assert!(err.to_string().starts_with(&expected), "{err}");
        assert!(!locker.is_dlm());
    }

    #[test]
    fn status_errors_name_action_item_and_status() {
        let err = Error::status_of(Action::Lock, "jobs", Status::NotOwner);
        assert_eq!(
            err.to_string(),
            r#"Lock "jobs": owned by another ID (NotOwner)"#
        );
        assert!(err.is_not_owner());
        let err = Error::status_of(Action::Put, "big", Status::No);
        assert_eq!(err.status(), Some(Status::No));
        assert!(err.to_string().ends_with("memory guard (NO)"), "{err}");
    }
}
