//! [`Client`]: one connection, many names. [`Handle`] is one name on it;
//! [`Pipeline`](super::Pipeline)s send many requests in one round trip.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::answer::Outcome;
use super::codec::ErasedCodec;
use super::connection::Link;
use super::error::Error;
use super::pipeline::{self, Pipeline};
use super::renew::RenewingGuard;
use super::setup::{Settings, Setup, settings_setters};
use super::{FencingToken, Status};

/// Configures a [`Client`] (or, with the `tokio` feature, an
/// `AsyncClient`); made by [`Client::builder`].
pub struct ClientBuilder {
    settings: Settings,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("id", &self.settings.id)
            .field("endpoints", &self.settings.endpoints)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    settings_setters!();

    /// The client. It connects on its first request.
    ///
    /// Fails if no ID was given and the operating system's random source
    /// cannot provide one, or if the authentication settings cannot work
    /// (see [`name`](Self::name)).
    pub fn build(self) -> Result<Client, Error> {
        let (setup, codec) = self.settings.finish()?;
        Ok(Client {
            inner: Arc::new(Inner {
                conn: Mutex::new(Conn {
                    link: setup.link(),
                    codec,
                }),
                setup,
            }),
        })
    }

    /// The checked settings, for the tokio client.
    #[cfg(feature = "tokio")]
    pub(crate) fn finish(self) -> Result<(Setup, Box<dyn ErasedCodec>), Error> {
        self.settings.finish()
    }
}

/// A client for any number of locks and data items over one connection.
///
/// Cloning it is cheap and shares the connection (and the ID): the clones
/// take turns on it, each request answered before the next is sent, so a
/// [`lock_wait`](Client::lock_wait) holds up the others until the server
/// answers it. Build a second client for waiting while the first works.
///
/// ```no_run
/// use std::time::Duration;
/// use jackrabbit_dlm::client::Client;
///
/// let client = Client::builder().host("127.0.0.1").port(37373).id("worker-7").build()?;
/// let minute = Duration::from_secs(60);
/// if client.try_lock("jobs", minute).is_ok() {
///     client.put("jobs-owner", "worker-7", minute)?;
///     client.unlock("jobs")?;
/// }
/// let reports = client.handle("reports"); // one name, same connection
/// reports.lock(minute)?;
/// reports.unlock()?;
/// # Ok::<(), jackrabbit_dlm::client::Error>(())
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    setup: Setup,
    conn: Mutex<Conn>,
}

/// What one request at a time uses.
struct Conn {
    link: Link,
    codec: Box<dyn ErasedCodec>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.inner.setup.id)
            .field("server", &self.conn().link.server())
            .finish_non_exhaustive()
    }
}

/// Picks the one variant an action's outcome can be.
macro_rules! expect_outcome {
    ($result:expr, $variant:path) => {
        match $result {
            Ok($variant(value)) => Ok(value),
            Ok(other) => unreachable!("outcome {other:?} for the wrong action"),
            Err(e) => Err(e),
        }
    };
}

#[cfg(feature = "tokio")]
pub(crate) use expect_outcome;

/// Whether a patient `lock` tries again after `error`.
pub(crate) fn worth_retrying(error: &Error) -> bool {
    error.is_io() || error.is_not_owner()
}

impl Client {
    /// Starts building a client, with the defaults of the Python client.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use jackrabbit_dlm::client::{Client, Encoding};
    ///
    /// // An upstream server: table-encoded lines, authenticated.
    /// let client = Client::builder()
    ///     .host("dlm.internal")
    ///     .encoding(Encoding::Table)
    ///     .name("billing")
    ///     .identity_file("billing.cfg")
    ///     .timeout(Duration::from_secs(5))
    ///     .build()?;
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            settings: Settings::new(),
        }
    }

    /// The ID this client acts as.
    pub fn id(&self) -> &str {
        &self.inner.setup.id
    }

    /// A handle on the lock (and data item) `name`, over this client's
    /// connection.
    pub fn handle(&self, name: impl Into<String>) -> Handle {
        Handle {
            client: self.clone(),
            name: name.into(),
        }
    }

    fn conn(&self) -> MutexGuard<'_, Conn> {
        self.inner
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends every request of `pipeline` at once, then reads the replies:
    /// one result per request, in the order they were added.
    ///
    /// A request whose value the codec cannot encode fails alone and is
    /// not sent. When the connection fails part way, the requests already
    /// answered keep their answers and the others are sent again (to the
    /// next endpoint, if there are several) where that is safe; see the
    /// module documentation, § The connection.
    pub fn send(&self, pipeline: &Pipeline) -> Vec<Result<Outcome, Error>> {
        let mut conn = self.conn();
        let Conn { link, codec } = &mut *conn;
        pipeline::send(link, &self.inner.setup, codec.as_ref(), pipeline)
    }

    /// One request, built by `add`.
    fn one(&self, add: impl FnOnce(&mut Pipeline) -> &mut Pipeline) -> Result<Outcome, Error> {
        let mut pipeline = Pipeline::new();
        add(&mut pipeline);
        self.send(&pipeline).pop().expect("one result per request")
    }

    /// Takes or renews the lock `name` for `expire` with one request:
    /// fails at once with `NotOwner` if another ID holds it. Returns the
    /// hold's fencing token (`None` from a server without them).
    pub fn try_lock(&self, name: &str, expire: Duration) -> Result<Option<FencingToken>, Error> {
        expect_outcome!(self.one(|p| p.lock(name, expire)), Outcome::Locked)
    }

    /// Takes or renews the lock `name` patiently: a connection failure or
    /// `NotOwner` is tried again up to the configured
    /// [`retries`](ClientBuilder::retries), with the configured sleep in
    /// between.
    pub fn lock(&self, name: &str, expire: Duration) -> Result<Option<FencingToken>, Error> {
        let mut retries_left = self.inner.setup.retries;
        loop {
            match self.try_lock(name, expire) {
                Err(e) if retries_left > 0 && worth_retrying(&e) => {
                    retries_left -= 1;
                    thread::sleep(self.inner.setup.retry_sleep);
                }
                outcome => return outcome,
            }
        }
    }

    /// Takes or renews the lock `name`, queueing on the server for up to
    /// `wait` while another ID holds it (the `Wait` extension): granted the
    /// moment the lock is free, `NotOwner` when `wait` runs out.
    pub fn lock_wait(
        &self,
        name: &str,
        expire: Duration,
        wait: Duration,
    ) -> Result<Option<FencingToken>, Error> {
        expect_outcome!(
            self.one(|p| p.lock_wait(name, expire, wait)),
            Outcome::Locked
        )
    }

    /// Takes the lock `name` patiently, as [`lock`](Client::lock), and
    /// keeps it renewed every `expire / 3` on a thread with its own
    /// connection until the guard is dropped or released.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use jackrabbit_dlm::client::Client;
    /// # let client = Client::builder().build()?;
    /// let guard = client.lock_renewing("migrations", Duration::from_secs(15))?;
    /// // ... work for as long as it takes; guard.is_held() says if it still is ...
    /// drop(guard); // renewals stop, the lock is released
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn lock_renewing(&self, name: &str, expire: Duration) -> Result<RenewingGuard, Error> {
        let sent_at = Instant::now();
        let token = self.lock(name, expire)?;
        RenewingGuard::start(
            self.inner.setup.clone(),
            name.to_owned(),
            token,
            expire,
            sent_at,
        )
    }

    /// Releases the lock `name`: `true` if this ID held it, `false` if
    /// nobody did; fails with `NotOwner` if another ID holds it.
    pub fn unlock(&self, name: &str) -> Result<bool, Error> {
        expect_outcome!(self.one(|p| p.unlock(name)), Outcome::Unlocked)
    }

    /// Asks who holds the lock `name`: `Locked` (this ID), `Unlocked`
    /// (nobody) or `NotOwner` (another ID).
    pub fn test_lock(&self, name: &str) -> Result<Status, Error> {
        expect_outcome!(self.one(|p| p.test_lock(name)), Outcome::Tested)
    }

    /// Stores `value` (through the codec) as the data item `name` for
    /// `expire`. Fails with `NotOwner` if another ID owns it, with `NO` if
    /// the server's memory guard refuses.
    pub fn put(&self, name: &str, value: impl AsRef<[u8]>, expire: Duration) -> Result<(), Error> {
        match self.one(|p| p.put(name, value, expire))? {
            Outcome::Stored => Ok(()),
            other => unreachable!("outcome {other:?} for Put"),
        }
    }

    /// Reads the data item `name`, decoded by the codec: `None` if there is
    /// none.
    pub fn get(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        expect_outcome!(self.one(|p| p.get(name)), Outcome::Value)
    }

    /// Removes the data item `name`: `true` if it was there.
    pub fn erase(&self, name: &str) -> Result<bool, Error> {
        expect_outcome!(self.one(|p| p.erase(name)), Outcome::Erased)
    }

    /// The server's version string, e.g. `JackrabbitDLM/0.1.0`.
    pub fn version(&self) -> Result<String, Error> {
        expect_outcome!(self.one(Pipeline::version), Outcome::Version)
    }

    /// The server's counters by name (the `Stats` extension).
    pub fn stats(&self) -> Result<BTreeMap<String, u64>, Error> {
        expect_outcome!(self.one(Pipeline::stats), Outcome::Stats)
    }
}

/// One lock (and the data item of the same name) on a [`Client`]'s
/// connection: the client's methods without the name. Made by
/// [`Client::handle`]; cheap to clone.
///
/// ```no_run
/// use std::time::Duration;
/// use jackrabbit_dlm::client::Client;
///
/// let client = Client::builder().build()?;
/// let (a, b) = (client.handle("a"), client.handle("b"));
/// a.lock(Duration::from_secs(30))?;
/// b.put("written while holding a", Duration::from_secs(30))?;
/// a.unlock()?;
/// # Ok::<(), jackrabbit_dlm::client::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Handle {
    client: Client,
    name: String,
}

impl Handle {
    /// The lock's (and data item's) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client this handle sends through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// [`Client::try_lock`] on this name.
    pub fn try_lock(&self, expire: Duration) -> Result<Option<FencingToken>, Error> {
        self.client.try_lock(&self.name, expire)
    }

    /// [`Client::lock`] on this name.
    pub fn lock(&self, expire: Duration) -> Result<Option<FencingToken>, Error> {
        self.client.lock(&self.name, expire)
    }

    /// [`Client::lock_wait`] on this name.
    pub fn lock_wait(
        &self,
        expire: Duration,
        wait: Duration,
    ) -> Result<Option<FencingToken>, Error> {
        self.client.lock_wait(&self.name, expire, wait)
    }

    /// [`Client::lock_renewing`] on this name.
    pub fn lock_renewing(&self, expire: Duration) -> Result<RenewingGuard, Error> {
        self.client.lock_renewing(&self.name, expire)
    }

    /// [`Client::unlock`] on this name.
    pub fn unlock(&self) -> Result<bool, Error> {
        self.client.unlock(&self.name)
    }

    /// [`Client::test_lock`] on this name.
    pub fn test_lock(&self) -> Result<Status, Error> {
        self.client.test_lock(&self.name)
    }

    /// [`Client::put`] on this name.
    pub fn put(&self, value: impl AsRef<[u8]>, expire: Duration) -> Result<(), Error> {
        self.client.put(&self.name, value, expire)
    }

    /// [`Client::get`] on this name.
    pub fn get(&self) -> Result<Option<Vec<u8>>, Error> {
        self.client.get(&self.name)
    }

    /// [`Client::erase`] on this name.
    pub fn erase(&self) -> Result<bool, Error> {
        self.client.erase(&self.name)
    }
}
