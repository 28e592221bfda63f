//! [`LockerBuilder`]: a [`Locker`]'s settings, with the defaults of the
//! Python client, and the random ID a locker gets when it is given none.

use std::fmt;
use std::time::Duration;

use super::codec::{ErasedCodec, FnCodec, Identity, ValueCodec};
use super::connection::Link;
use super::error::{BoxError, Error};
use super::{DEFAULT_PORT, Locker};
use crate::protocol::codec::Encoding;

/// Configures a [`Locker`]; made by [`Locker::builder`].
pub struct LockerBuilder {
    name: String,
    id: Option<String>,
    host: String,
    port: u16,
    timeout: Duration,
    retries: u32,
    retry_sleep: Duration,
    encoding: Encoding,
    codec: Box<dyn ErasedCodec>,
    limit: Option<u32>,
}

impl fmt::Debug for LockerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockerBuilder")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl LockerBuilder {
    /// The defaults, for the lock (and data item) `name`.
    pub(super) fn new(name: String) -> LockerBuilder {
        LockerBuilder {
            name,
            id: None,
            host: "127.0.0.1".to_owned(),
            port: DEFAULT_PORT,
            timeout: Duration::from_secs(10),
            retries: 7,
            retry_sleep: Duration::from_secs(1),
            encoding: Encoding::Plain,
            codec: Box::new(Identity),
            limit: None,
        }
    }

    /// The `Limit` of this locker's shared requests
    /// ([`lock_shared`](Locker::lock_shared)): at most `limit` holders at
    /// once, a counting semaphore. Every holder must ask with the same
    /// limit (the server answers `NotOwner` to another). Default: none, the
    /// server's `--max-holders`.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The ID to act as (1 to 1024 bytes). Default: a fresh random URL-safe
    /// string of 37 to 72 characters, so no two lockers share an owner by
    /// accident. Lockers given the same ID are one owner.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The server's host name or address. Default `127.0.0.1`.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// The server's port. Default [`DEFAULT_PORT`].
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The limit on connecting, and on waiting for each reply. Default 10 s.
    /// A zero duration is taken as one millisecond.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How many more times [`Locker::lock`] tries after a connection failure
    /// or `NotOwner`. Default 7.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// How long [`Locker::lock`] sleeps between tries. Default 1 s.
    pub fn retry_sleep(mut self, retry_sleep: Duration) -> Self {
        self.retry_sleep = retry_sleep;
        self
    }

    /// Plain JSON or table-encoded request lines. Default plain.
    pub fn encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// The codec for stored values. Default [`Identity`] (UTF-8 text).
    pub fn codec(mut self, codec: impl ValueCodec + 'static) -> Self {
        self.codec = Box::new(codec);
        self
    }

    /// The codec for stored values, as two closures: see [`FnCodec`].
    ///
    /// ```
    /// use jackrabbit_dlm::client::Locker;
    ///
    /// // Upper-case on the way out, lower-case on the way in.
    /// let locker = Locker::builder("shouting")
    ///     .codec_fns(
    ///         |v: &[u8]| Ok::<_, String>(String::from_utf8_lossy(v).to_uppercase()),
    ///         |t: &str| Ok(t.to_lowercase().into_bytes()),
    ///     )
    ///     .build()?;
    /// # Ok::<(), jackrabbit_dlm::client::Error>(())
    /// ```
    pub fn codec_fns<E, D, Err>(self, encode: E, decode: D) -> Self
    where
        E: Fn(&[u8]) -> Result<String, Err> + Send + 'static,
        D: Fn(&str) -> Result<Vec<u8>, Err> + Send + 'static,
        Err: Into<BoxError> + 'static,
    {
        self.codec(FnCodec::new(encode, decode))
    }

    /// The locker. It connects on its first request.
    ///
    /// Fails only if no ID was given and the operating system's random
    /// source cannot provide one.
    pub fn build(self) -> Result<Locker, Error> {
        let id = match self.id {
            Some(id) => id,
            None => random_id()?,
        };
        let mut locker = Locker::new(
            self.name,
            id,
            self.encoding,
            (self.retries, self.retry_sleep),
            self.codec,
            Link::new(self.host, self.port, self.timeout),
        );
        locker.limit = self.limit;
        Ok(locker)
    }
}

/// A fresh random ID: 37 to 72 characters of the URL-safe base64 alphabet.
fn random_id() -> Result<String, Error> {
    const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut random = [0u8; 1 + 72];
    getrandom::fill(&mut random).map_err(|e| {
        Error::io(
            "the OS random source".to_owned(),
            "read",
            std::io::Error::other(e),
        )
    })?;
    // 36 lengths from one byte: lengths 37 to 40 are a shade likelier than
    // the rest, which costs nothing that matters (every ID has at least
    // 37 * 6 = 222 random bits).
    let len = 37 + usize::from(random[0]) % 36;
    Ok(random[1..=len]
        .iter()
        .map(|&b| char::from(URL_SAFE[usize::from(b & 63)]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_url_safe_and_sized() {
        for _ in 0..200 {
            let id = random_id().unwrap();
            assert!((37..=72).contains(&id.len()), "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
        }
        assert_ne!(random_id().unwrap(), random_id().unwrap());
    }
}
