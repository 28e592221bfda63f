//! [`Pipeline`]: several requests, on any names, sent at once and answered
//! in order.
//!
//! The server answers the requests of one connection in the order they
//! were sent (PROTOCOL.md, Transport and framing), so a pipeline writes
//! every line, then reads one reply per line, and the `n`th reply is the
//! `n`th request's. One round trip instead of `n`.

use std::time::Duration;

use super::answer::{self, Outcome};
use super::codec::ErasedCodec;
use super::connection::Link;
use super::error::Error;
use super::setup::Setup;
use super::wire::{Reply, Request};
use crate::protocol::action::Action;

/// The `FileName` of the requests that name nothing (`Version`, `Stats`),
/// which the protocol still requires.
pub(crate) const NO_NAME: &str = "-";

/// Requests to send together with [`Client::send`](super::Client::send)
/// (or the tokio client's). Each method adds one request and returns the
/// pipeline, so they chain; the results come back in the order they were
/// added, one [`Outcome`] (or error) each.
///
/// ```no_run
/// use std::time::Duration;
/// use jackrabbit_dlm::client::{Client, Outcome, Pipeline};
///
/// let client = Client::builder().id("worker-7").build()?;
/// let minute = Duration::from_secs(60);
/// let mut batch = Pipeline::new();
/// batch.lock("a", minute).lock("b", minute).put("status", "busy", minute).get("config");
/// let results = client.send(&batch);
/// if let Ok(Outcome::Value(Some(config))) = &results[3] {
///     println!("config is {} bytes", config.len());
/// }
/// # Ok::<(), jackrabbit_dlm::client::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    ops: Vec<Op>,
}

/// One request of a pipeline, with its value not yet encoded.
#[derive(Debug, Clone)]
struct Op {
    action: Action,
    name: String,
    expire: Option<Duration>,
    wait: Option<Duration>,
    value: Option<Vec<u8>>,
}

impl Pipeline {
    /// An empty pipeline.
    pub fn new() -> Pipeline {
        Pipeline::default()
    }

    /// How many requests it holds.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Removes every request, to fill it again.
    pub fn clear(&mut self) {
        self.ops.clear();
    }

    fn push(&mut self, action: Action, name: &str) -> &mut Op {
        self.ops.push(Op {
            action,
            name: name.to_owned(),
            expire: None,
            wait: None,
            value: None,
        });
        self.ops.last_mut().expect("just pushed")
    }

    /// Takes or renews the lock `name` for `expire` (one try).
    pub fn lock(&mut self, name: &str, expire: Duration) -> &mut Self {
        self.push(Action::Lock, name).expire = Some(expire);
        self
    }

    /// Takes or renews the lock `name` for `expire`, queueing up to `wait`
    /// on the server. A parked request holds back the replies to every
    /// later request of the pipeline until it is answered.
    pub fn lock_wait(&mut self, name: &str, expire: Duration, wait: Duration) -> &mut Self {
        let op = self.push(Action::Lock, name);
        op.expire = Some(expire);
        op.wait = Some(wait).filter(|w| !w.is_zero());
        self
    }

    /// Releases the lock `name`.
    pub fn unlock(&mut self, name: &str) -> &mut Self {
        self.push(Action::Unlock, name);
        self
    }

    /// Asks who holds the lock `name`.
    pub fn test_lock(&mut self, name: &str) -> &mut Self {
        self.push(Action::TestLock, name);
        self
    }

    /// Stores `value` (through the client's codec) as the data item `name`.
    pub fn put(&mut self, name: &str, value: impl AsRef<[u8]>, expire: Duration) -> &mut Self {
        let op = self.push(Action::Put, name);
        op.expire = Some(expire);
        op.value = Some(value.as_ref().to_vec());
        self
    }

    /// Reads the data item `name`.
    pub fn get(&mut self, name: &str) -> &mut Self {
        self.push(Action::Get, name);
        self
    }

    /// Removes the data item `name`.
    pub fn erase(&mut self, name: &str) -> &mut Self {
        self.push(Action::Erase, name);
        self
    }

    /// Asks the server's version.
    pub fn version(&mut self) -> &mut Self {
        self.push(Action::Version, NO_NAME);
        self
    }

    /// Asks the server's counters.
    pub fn stats(&mut self) -> &mut Self {
        self.push(Action::Stats, NO_NAME);
        self
    }
}

/// A pipeline with its values encoded, ready to become request lines: the
/// part of sending that every transport shares.
pub(crate) struct Prepared<'p> {
    ops: &'p [Op],
    /// Each op's `DataStore`, or why its value could not be encoded.
    data: Vec<Result<Option<String>, Error>>,
}

impl<'p> Prepared<'p> {
    pub fn new(pipeline: &'p Pipeline, codec: &dyn ErasedCodec) -> Prepared<'p> {
        let data = pipeline
            .ops
            .iter()
            .map(|op| match &op.value {
                None => Ok(None),
                Some(value) => codec.encode_value(value).map(Some).map_err(Error::codec),
            })
            .collect();
        Prepared {
            ops: &pipeline.ops,
            data,
        }
    }

    /// The requests to send: every op whose value could be encoded.
    pub fn requests<'a>(&'a self, setup: &'a Setup) -> Vec<Request<'a>> {
        self.ops
            .iter()
            .zip(&self.data)
            .filter_map(|(op, data)| {
                let data = data.as_ref().ok()?;
                Some(Request {
                    expire: op.expire,
                    wait: op.wait,
                    data: data.as_deref(),
                    ..setup.request(op.action, &op.name)
                })
            })
            .collect()
    }

    /// Each op's outcome, from the replies to [`requests`](Self::requests)
    /// in order.
    pub fn finish(
        self,
        replies: Vec<Result<Reply, Error>>,
        codec: &dyn ErasedCodec,
    ) -> Vec<Result<Outcome, Error>> {
        let mut replies = replies.into_iter();
        self.ops
            .iter()
            .zip(self.data)
            .map(|(op, data)| {
                data?;
                let reply = replies
                    .next()
                    .unwrap_or_else(|| Err(Error::protocol("no reply")))?;
                answer::outcome(op.action, reply, &op.name, codec)
            })
            .collect()
    }
}

/// Sends `pipeline` over `link` and reads every answer.
pub(crate) fn send(
    link: &mut Link,
    setup: &Setup,
    codec: &dyn ErasedCodec,
    pipeline: &Pipeline,
) -> Vec<Result<Outcome, Error>> {
    let prepared = Prepared::new(pipeline, codec);
    let replies = {
        let requests = prepared.requests(setup);
        if requests.is_empty() {
            Vec::new()
        } else {
            link.exchange(&requests, setup.encoding)
        }
    };
    prepared.finish(replies, codec)
}
