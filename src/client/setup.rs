//! The settings every client shares, whichever type it is: the servers to
//! talk to, the ID, authentication, encodings, patience and the value
//! codec. [`Settings`] is what a builder collects; [`Setup`] is what
//! [`Settings::finish`] checks it into, and what a client keeps (cheap to
//! clone, so a renewal thread gets its own copy and its own connection).
//!
//! Both builders ([`LockerBuilder`](super::LockerBuilder) and
//! [`ClientBuilder`](super::ClientBuilder)) get their setters from one
//! macro, `settings_setters!`, so the two cannot drift apart.

use std::path::PathBuf;
use std::time::Duration;

use super::DEFAULT_PORT;
use super::codec::{ErasedCodec, Table};
use super::connection::{Endpoint, Link};
use super::error::Error;
use super::identity;
use super::wire::{Auth, Request};
use crate::protocol::action::Action;
use crate::protocol::codec::Encoding;

/// Where an authenticating client's Identity comes from.
pub(crate) enum IdentitySource {
    /// Given as it is.
    Text(String),
    /// An identity file (PROTOCOL.md, Authentication), read by `build`.
    File(PathBuf),
}

/// What a builder has been told so far.
pub(crate) struct Settings {
    pub id: Option<String>,
    pub endpoints: Vec<Endpoint>,
    pub timeout: Duration,
    pub retries: u32,
    pub retry_sleep: Duration,
    pub encoding: Encoding,
    pub codec: Box<dyn ErasedCodec>,
    pub auth_name: Option<String>,
    pub identity: Option<IdentitySource>,
}

impl Settings {
    /// The defaults of the Python client.
    pub fn new() -> Settings {
        Settings {
            id: None,
            endpoints: vec![Endpoint::new("127.0.0.1".to_owned(), DEFAULT_PORT)],
            timeout: Duration::from_secs(10),
            retries: 7,
            retry_sleep: Duration::from_secs(1),
            encoding: Encoding::Plain,
            codec: Box::new(Table),
            auth_name: None,
            identity: None,
        }
    }

    /// The checked setup and the codec: draws the random ID if none was
    /// given, reads the identity file, and refuses a `Name` that breaks
    /// PROTOCOL.md's rule or comes without an Identity (and the reverse).
    pub fn finish(self) -> Result<(Setup, Box<dyn ErasedCodec>), Error> {
        let id = match self.id {
            Some(id) => id,
            None => random_id()?,
        };
        let identity = match self.identity {
            None => None,
            Some(IdentitySource::Text(text)) => Some(text),
            Some(IdentitySource::File(path)) => Some(identity::read_identity_file(&path)?),
        };
        let auth = match (self.auth_name, identity) {
            (None, None) => None,
            (Some(name), Some(identity)) => {
                identity::check_name(&name).map_err(Error::config)?;
                Some(Auth { name, identity })
            }
            (Some(name), None) => {
                return Err(Error::config(format!(
                    "the Name {name:?} needs an Identity (identity or identity_file)"
                )));
            }
            (None, Some(_)) => {
                return Err(Error::config("an Identity needs a Name to go with it"));
            }
        };
        let setup = Setup {
            id,
            auth,
            encoding: self.encoding,
            timeout: self.timeout,
            retries: self.retries,
            retry_sleep: self.retry_sleep,
            endpoints: self.endpoints,
        };
        Ok((setup, self.codec))
    }
}

/// A client's checked settings, without the codec.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub id: String,
    pub auth: Option<Auth>,
    pub encoding: Encoding,
    pub timeout: Duration,
    pub retries: u32,
    pub retry_sleep: Duration,
    pub endpoints: Vec<Endpoint>,
}

impl Setup {
    /// A new, unconnected link to this setup's servers, waiting at most
    /// `timeout` for a connection and for each reply.
    pub fn link_with(&self, timeout: Duration) -> Link {
        Link::new(self.endpoints.clone(), timeout)
    }

    /// A new, unconnected link to this setup's servers.
    pub fn link(&self) -> Link {
        self.link_with(self.timeout)
    }

    /// A request for `action` on `name`, as this ID (and Name, if any).
    pub fn request<'a>(&'a self, action: Action, name: &'a str) -> Request<'a> {
        Request {
            auth: self.auth.as_ref(),
            ..Request::new(action, &self.id, name)
        }
    }
}

/// A fresh random ID: 37 to 72 characters of the URL-safe base64 alphabet.
pub(crate) fn random_id() -> Result<String, Error> {
    let mut random = [0u8; 1 + 72];
    fill_random(&mut random)?;
    // 36 lengths from one byte: lengths 37 to 40 are a shade likelier than
    // the rest, which costs nothing that matters (every ID has at least
    // 37 * 6 = 222 random bits).
    let len = 37 + usize::from(random[0]) % 36;
    Ok(random[1..=len]
        .iter()
        .map(|&b| char::from(URL_SAFE[usize::from(b & 63)]))
        .collect())
}

/// The URL-safe base64 alphabet.
pub(crate) const URL_SAFE: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Fills `buffer` from the operating system's random source.
pub(crate) fn fill_random(buffer: &mut [u8]) -> Result<(), Error> {
    getrandom::fill(buffer).map_err(|e| {
        Error::io(
            "the OS random source".to_owned(),
            "read",
            std::io::Error::other(e),
        )
    })
}

/// The setters both builders share, on `self.settings`. Expanded inside
/// each builder's `impl` block.
macro_rules! settings_setters {
    () => {
        /// The ID to act as (1 to 1024 bytes). Default: a fresh random
        /// URL-safe string of 37 to 72 characters, so no two clients share
        /// an owner by accident. Clients given the same ID are one owner.
        pub fn id(mut self, id: impl Into<String>) -> Self {
            self.settings.id = Some(id.into());
            self
        }

        /// The server's host name or address. Default `127.0.0.1`. With
        /// several [`endpoints`](Self::endpoints), the first one's.
        pub fn host(mut self, host: impl Into<String>) -> Self {
            self.settings.endpoints[0].host = host.into();
            self
        }

        /// The server's port. Default [`DEFAULT_PORT`](crate::client::DEFAULT_PORT).
        /// With several [`endpoints`](Self::endpoints), the first one's.
        pub fn port(mut self, port: u16) -> Self {
            self.settings.endpoints[0].port = port;
            self
        }

        /// The servers to talk to, as `(host, port)` pairs: the nodes of a
        /// cluster, any of which answers every request. The client connects
        /// to the first that answers; when a connection fails or a node
        /// answers `Unavailable`, it moves on to the next (and round again),
        /// sending a request again only where that is safe (see the
        /// module documentation, § The connection). An empty list keeps
        /// the current one.
        ///
        /// ```
        /// use jackrabbit_dlm::client::Client;
        ///
        /// let cluster = Client::builder()
        ///     .endpoints([("dlm-1", 37373), ("dlm-2", 37373), ("dlm-3", 37373)])
        ///     .build()?;
        /// # Ok::<(), jackrabbit_dlm::client::Error>(())
        /// ```
        pub fn endpoints<H: Into<String>>(
            mut self,
            endpoints: impl IntoIterator<Item = (H, u16)>,
        ) -> Self {
            let list: Vec<_> = endpoints
                .into_iter()
                .map(|(host, port)| crate::client::connection::Endpoint::new(host.into(), port))
                .collect();
            if !list.is_empty() {
                self.settings.endpoints = list;
            }
            self
        }

        /// The limit on connecting, and on waiting for each reply. Default
        /// 10 s. A zero duration is taken as one millisecond.
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.settings.timeout = timeout.max(std::time::Duration::from_millis(1));
            self
        }

        /// How many more times a patient `lock` tries after a connection
        /// failure or `NotOwner`. Default 7.
        pub fn retries(mut self, retries: u32) -> Self {
            self.settings.retries = retries;
            self
        }

        /// How long a patient `lock` sleeps between tries. Default 1 s.
        pub fn retry_sleep(mut self, retry_sleep: std::time::Duration) -> Self {
            self.settings.retry_sleep = retry_sleep;
            self
        }

        /// Plain JSON or table-encoded request lines. Default plain.
        /// [`Encoding::Table`](crate::client::Encoding::Table) for the
        /// current upstream server, which reads table-encoded lines only.
        pub fn encoding(mut self, encoding: crate::client::Encoding) -> Self {
            self.settings.encoding = encoding;
            self
        }

        /// The codec for stored values. Default [`Table`](crate::client::Table),
        /// what the Python client applies to every value, so a value put by
        /// either client reads back in the other.
        pub fn codec(mut self, codec: impl crate::client::ValueCodec + 'static) -> Self {
            self.settings.codec = Box::new(codec);
            self
        }

        /// The codec for stored values, as two closures: see
        /// [`FnCodec`](crate::client::FnCodec).
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
            Err: Into<crate::client::BoxError> + 'static,
        {
            self.codec(crate::client::FnCodec::new(encode, decode))
        }

        /// Authenticate as `name` (PROTOCOL.md, Authentication): every
        /// request carries it as `Name`, with the [`identity`](Self::identity)
        /// as `Identity`. `name` is 1 to 255 bytes of `A-Z a-z 0-9 . _ -`,
        /// not starting with `.`; `build` refuses any other. Default: none
        /// (anonymous).
        ///
        /// ```no_run
        /// use jackrabbit_dlm::client::Locker;
        ///
        /// let locker = Locker::builder("jobs")
        ///     .name("billing")
        ///     .identity_file("/home/JackrabbitDLM/Config/billing.cfg")
        ///     .build()?;
        /// # Ok::<(), jackrabbit_dlm::client::Error>(())
        /// ```
        pub fn name(mut self, name: impl Into<String>) -> Self {
            self.settings.auth_name = Some(name.into());
            self
        }

        /// The secret that goes with [`name`](Self::name), sent as
        /// `Identity`. Never shown by `Debug`.
        pub fn identity(mut self, identity: impl Into<String>) -> Self {
            self.settings.identity =
                Some(crate::client::setup::IdentitySource::Text(identity.into()));
            self
        }

        /// Reads the Identity from an identity file (a JSON object with an
        /// `Identity` string, as `dlm identity new` writes it) when the
        /// client is built.
        pub fn identity_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
            self.settings.identity = Some(crate::client::setup::IdentitySource::File(path.into()));
            self
        }
    };
}

pub(crate) use settings_setters;

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

    #[test]
    fn a_name_needs_an_identity_and_must_follow_the_rule() {
        let with = |name: Option<&str>, identity: Option<&str>| {
            let mut settings = Settings::new();
            settings.id = Some("me".to_owned());
            settings.auth_name = name.map(str::to_owned);
            settings.identity = identity.map(|i| IdentitySource::Text(i.to_owned()));
            settings.finish().map(|(setup, _)| setup.auth)
        };
        assert_eq!(with(None, None).unwrap(), None);
        let auth = with(Some("svc"), Some("secret")).unwrap().unwrap();
        assert_eq!(
            (auth.name.as_str(), auth.identity.as_str()),
            ("svc", "secret")
        );
        for (name, identity) in [
            (Some("svc"), None),
            (None, Some("secret")),
            (Some("../etc"), Some("secret")),
            (Some(".hidden"), Some("secret")),
            (Some(""), Some("secret")),
        ] {
            let err = with(name, identity).unwrap_err();
            assert!(
                matches!(err.kind(), super::super::ErrorKind::Config(_)),
                "{err}"
            );
        }
    }
}
