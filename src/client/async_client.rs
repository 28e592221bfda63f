//! [`AsyncClient`] (the `tokio` feature): the surface of [`Client`] with
//! `async` methods, over a tokio `TcpStream`.
//!
//! Nothing of the protocol is written twice: request lines and replies are
//! `wire`'s, what each answer means is `answer`'s, pipelines are the same
//! [`Pipeline`] type, and the resend policy is the same `Exchange` the
//! blocking link drives; only the socket calls here are tokio's. A renewing
//! guard is the one [`RenewingGuard`], whose renewals run on a thread of
//! their own whatever the runtime.
//!
//! [`Client`]: super::Client

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::answer::Outcome;
use super::codec::ErasedCodec;
use super::connection::{
    Endpoint, Endpoints, Exchange, Round, closed_early, is_usable, strip_newline,
};
use super::error::Error;
use super::handles::{ClientBuilder, expect_outcome, worth_retrying};
use super::pipeline::{Pipeline, Prepared};
use super::renew::RenewingGuard;
use super::setup::Setup;
use super::wire::{Reply, Request};
use super::{FencingToken, Status};
use crate::protocol::codec::Encoding;

impl ClientBuilder {
    /// The tokio client. It connects on its first request, which must run
    /// inside a tokio runtime (with its I/O and time drivers enabled).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), jackrabbit_dlm::client::Error> {
    /// use std::time::Duration;
    /// use jackrabbit_dlm::client::Client;
    ///
    /// let client = Client::builder().id("worker-7").build_async()?;
    /// if client.try_lock("jobs", Duration::from_secs(30)).await.is_ok() {
    ///     client.unlock("jobs").await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn build_async(self) -> Result<AsyncClient, Error> {
        let (setup, codec) = self.finish()?;
        Ok(AsyncClient {
            inner: Arc::new(Inner {
                conn: Mutex::new(Conn {
                    link: AsyncLink::new(setup.endpoints.clone(), setup.timeout),
                    codec,
                }),
                setup,
            }),
        })
    }
}

/// [`Client`](super::Client)'s surface, `async`: one connection, many
/// names, pipelines. Made by [`ClientBuilder::build_async`]; cheap to clone
/// (the clones share the connection and take turns on it).
///
/// ```no_run
/// # async fn demo() -> Result<(), jackrabbit_dlm::client::Error> {
/// use std::time::Duration;
/// use jackrabbit_dlm::client::{AsyncClient, Outcome, Pipeline};
///
/// let client = AsyncClient::builder().host("127.0.0.1").build_async()?;
/// let minute = Duration::from_secs(60);
/// let jobs = client.handle("jobs");
/// jobs.lock(minute).await?;
/// let mut batch = Pipeline::new();
/// batch.put("jobs-state", "running", minute).get("jobs-config");
/// for result in client.send(&batch).await {
///     println!("{:?}", result?);
/// }
/// jobs.unlock().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AsyncClient {
    inner: Arc<Inner>,
}

struct Inner {
    setup: Setup,
    conn: Mutex<Conn>,
}

struct Conn {
    link: AsyncLink,
    codec: Box<dyn ErasedCodec>,
}

impl fmt::Debug for AsyncClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncClient")
            .field("id", &self.inner.setup.id)
            .finish_non_exhaustive()
    }
}

impl AsyncClient {
    /// Starts building a client; finish with [`ClientBuilder::build_async`].
    pub fn builder() -> ClientBuilder {
        super::Client::builder()
    }

    /// The ID this client acts as.
    pub fn id(&self) -> &str {
        &self.inner.setup.id
    }

    /// A handle on the lock (and data item) `name`, over this client's
    /// connection.
    pub fn handle(&self, name: impl Into<String>) -> AsyncHandle {
        AsyncHandle {
            client: self.clone(),
            name: name.into(),
        }
    }

    /// Sends every request of `pipeline` at once, then reads the replies:
    /// one result per request, in the order they were added, as
    /// [`Client::send`](super::Client::send).
    pub async fn send(&self, pipeline: &Pipeline) -> Vec<Result<Outcome, Error>> {
        let mut conn = self.inner.conn.lock().await;
        let setup = &self.inner.setup;
        let prepared = Prepared::new(pipeline, conn.codec.as_ref());
        let replies = {
            let requests = prepared.requests(setup);
            if requests.is_empty() {
                Vec::new()
            } else {
                conn.link.exchange(&requests, setup.encoding).await
            }
        };
        prepared.finish(replies, conn.codec.as_ref())
    }

    async fn one(
        &self,
        add: impl FnOnce(&mut Pipeline) -> &mut Pipeline,
    ) -> Result<Outcome, Error> {
        let mut pipeline = Pipeline::new();
        add(&mut pipeline);
        self.send(&pipeline)
            .await
            .pop()
            .expect("one result per request")
    }

    /// [`Client::try_lock`](super::Client::try_lock).
    pub async fn try_lock(
        &self,
        name: &str,
        expire: Duration,
    ) -> Result<Option<FencingToken>, Error> {
        expect_outcome!(self.one(|p| p.lock(name, expire)).await, Outcome::Locked)
    }

    /// [`Client::lock`](super::Client::lock): patient, sleeping on the
    /// runtime's timer between tries.
    pub async fn lock(&self, name: &str, expire: Duration) -> Result<Option<FencingToken>, Error> {
        let mut retries_left = self.inner.setup.retries;
        loop {
            match self.try_lock(name, expire).await {
                Err(e) if retries_left > 0 && worth_retrying(&e) => {
                    retries_left -= 1;
                    tokio::time::sleep(self.inner.setup.retry_sleep).await;
                }
                outcome => return outcome,
            }
        }
    }

    /// [`Client::lock_wait`](super::Client::lock_wait).
    pub async fn lock_wait(
        &self,
        name: &str,
        expire: Duration,
        wait: Duration,
    ) -> Result<Option<FencingToken>, Error> {
        expect_outcome!(
            self.one(|p| p.lock_wait(name, expire, wait)).await,
            Outcome::Locked
        )
    }

    /// [`Client::lock_renewing`](super::Client::lock_renewing): the lock is
    /// taken on this connection; the renewals run on a thread of their own
    /// with its own connection. Dropping or releasing the guard waits for
    /// one `Unlock` round trip.
    pub async fn lock_renewing(
        &self,
        name: &str,
        expire: Duration,
    ) -> Result<RenewingGuard, Error> {
        let sent_at = Instant::now();
        let token = self.lock(name, expire).await?;
        RenewingGuard::start(
            self.inner.setup.clone(),
            name.to_owned(),
            token,
            expire,
            sent_at,
        )
    }

    /// [`Client::unlock`](super::Client::unlock).
    pub async fn unlock(&self, name: &str) -> Result<bool, Error> {
        expect_outcome!(self.one(|p| p.unlock(name)).await, Outcome::Unlocked)
    }

    /// [`Client::test_lock`](super::Client::test_lock).
    pub async fn test_lock(&self, name: &str) -> Result<Status, Error> {
        expect_outcome!(self.one(|p| p.test_lock(name)).await, Outcome::Tested)
    }

    /// [`Client::put`](super::Client::put).
    pub async fn put(
        &self,
        name: &str,
        value: impl AsRef<[u8]>,
        expire: Duration,
    ) -> Result<(), Error> {
        match self.one(|p| p.put(name, value, expire)).await? {
            Outcome::Stored => Ok(()),
            other => unreachable!("outcome {other:?} for Put"),
        }
    }

    /// [`Client::get`](super::Client::get).
    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        expect_outcome!(self.one(|p| p.get(name)).await, Outcome::Value)
    }

    /// [`Client::erase`](super::Client::erase).
    pub async fn erase(&self, name: &str) -> Result<bool, Error> {
        expect_outcome!(self.one(|p| p.erase(name)).await, Outcome::Erased)
    }

    /// [`Client::version`](super::Client::version).
    pub async fn version(&self) -> Result<String, Error> {
        expect_outcome!(self.one(Pipeline::version).await, Outcome::Version)
    }

    /// [`Client::stats`](super::Client::stats).
    pub async fn stats(&self) -> Result<BTreeMap<String, u64>, Error> {
        expect_outcome!(self.one(Pipeline::stats).await, Outcome::Stats)
    }
}

/// One name on an [`AsyncClient`]: [`Handle`](super::Handle)'s surface,
/// `async`. Made by [`AsyncClient::handle`].
#[derive(Debug, Clone)]
pub struct AsyncHandle {
    client: AsyncClient,
    name: String,
}

impl AsyncHandle {
    /// The lock's (and data item's) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client this handle sends through.
    pub fn client(&self) -> &AsyncClient {
        &self.client
    }

    /// [`AsyncClient::try_lock`] on this name.
    pub async fn try_lock(&self, expire: Duration) -> Result<Option<FencingToken>, Error> {
        self.client.try_lock(&self.name, expire).await
    }

    /// [`AsyncClient::lock`] on this name.
    pub async fn lock(&self, expire: Duration) -> Result<Option<FencingToken>, Error> {
        self.client.lock(&self.name, expire).await
    }

    /// [`AsyncClient::lock_wait`] on this name.
    pub async fn lock_wait(
        &self,
        expire: Duration,
        wait: Duration,
    ) -> Result<Option<FencingToken>, Error> {
        self.client.lock_wait(&self.name, expire, wait).await
    }

    /// [`AsyncClient::lock_renewing`] on this name.
    pub async fn lock_renewing(&self, expire: Duration) -> Result<RenewingGuard, Error> {
        self.client.lock_renewing(&self.name, expire).await
    }

    /// [`AsyncClient::unlock`] on this name.
    pub async fn unlock(&self) -> Result<bool, Error> {
        self.client.unlock(&self.name).await
    }

    /// [`AsyncClient::test_lock`] on this name.
    pub async fn test_lock(&self) -> Result<Status, Error> {
        self.client.test_lock(&self.name).await
    }

    /// [`AsyncClient::put`] on this name.
    pub async fn put(&self, value: impl AsRef<[u8]>, expire: Duration) -> Result<(), Error> {
        self.client.put(&self.name, value, expire).await
    }

    /// [`AsyncClient::get`] on this name.
    pub async fn get(&self) -> Result<Option<Vec<u8>>, Error> {
        self.client.get(&self.name).await
    }

    /// [`AsyncClient::erase`] on this name.
    pub async fn erase(&self) -> Result<bool, Error> {
        self.client.erase(&self.name).await
    }
}

/// The tokio twin of the blocking `Link`: the same `Exchange` decides,
/// this only moves the bytes.
struct AsyncLink {
    endpoints: Endpoints,
    timeout: Duration,
    connection: Option<BufReader<TcpStream>>,
}

impl AsyncLink {
    fn new(endpoints: Vec<Endpoint>, timeout: Duration) -> AsyncLink {
        AsyncLink {
            endpoints: Endpoints::new(endpoints),
            timeout,
            connection: None,
        }
    }

    async fn exchange(
        &mut self,
        requests: &[Request<'_>],
        encoding: Encoding,
    ) -> Vec<Result<Reply, Error>> {
        let mut exchange = Exchange::new(requests, encoding, self.endpoints.len());
        while !exchange.is_done() {
            if let Err(e) = self.connect().await {
                exchange.connect_failed(&self.endpoints.describe(), &e);
                break;
            }
            let connection = self.connection.as_mut().expect("just connected");
            let (lines, count, read_timeout) = exchange.round(self.timeout);
            let round = round_on(connection, lines, count, read_timeout).await;
            let verdict = exchange.finish_round(&self.endpoints.current().to_string(), round);
            self.endpoints.follow(verdict, &mut self.connection);
        }
        exchange.into_results()
    }

    /// Keeps a connection that is still fit for use, else opens one to the
    /// first endpoint that accepts, starting with the current one.
    async fn connect(&mut self) -> io::Result<()> {
        if let Some(c) = &self.connection
            && is_usable(c.get_ref().as_raw_fd(), !c.buffer().is_empty())
        {
            return Ok(());
        }
        self.connection = None;
        let mut last = None;
        for _ in 0..self.endpoints.len() {
            let endpoint = self.endpoints.current();
            let connect = TcpStream::connect((endpoint.host.as_str(), endpoint.port));
            match tokio::time::timeout(self.timeout, connect).await {
                Ok(Ok(stream)) => {
                    stream.set_nodelay(true)?;
                    self.connection = Some(BufReader::new(stream));
                    return Ok(());
                }
                Ok(Err(e)) => last = Some(e),
                Err(_) => last = Some(io::ErrorKind::TimedOut.into()),
            }
            self.endpoints.advance();
        }
        Err(last.expect("at least one endpoint"))
    }
}

/// Writes `lines`, then reads `count` reply lines, each within
/// `read_timeout`, stopping at the first failure.
async fn round_on(
    connection: &mut BufReader<TcpStream>,
    lines: &[u8],
    count: usize,
    read_timeout: Duration,
) -> Round {
    let mut round = Round::default();
    while round.written < lines.len() {
        let write = connection.get_mut().write(&lines[round.written..]);
        match tokio::time::timeout(read_timeout, write).await {
            Ok(Ok(0)) => {
                round.write_error = Some(io::ErrorKind::WriteZero.into());
                return round;
            }
            Ok(Ok(n)) => round.written += n,
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => {
                round.write_error = Some(e);
                return round;
            }
            Err(_) => {
                round.write_error = Some(io::ErrorKind::TimedOut.into());
                return round;
            }
        }
    }
    for _ in 0..count {
        let mut reply = Vec::new();
        match tokio::time::timeout(read_timeout, connection.read_until(b'\n', &mut reply)).await {
            Ok(Ok(_)) if strip_newline(&mut reply) => round.replies.push(reply),
            Ok(Ok(_)) => {
                round.read_error = Some(closed_early());
                break;
            }
            Ok(Err(e)) => {
                round.read_error = Some(e);
                break;
            }
            Err(_) => {
                round.read_error = Some(io::ErrorKind::TimedOut.into());
                break;
            }
        }
    }
    round
}
