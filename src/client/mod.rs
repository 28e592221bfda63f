//! The Rust client.
//!
//! - [`Client`]: one connection, many names; [`Handle`]s on single names;
//!   [`Pipeline`]s of requests sent together and answered in order.
//! - [`Locker`]: one name, one connection, the Python `Locker` in Rust's
//!   terms (results instead of status strings, a [`LockGuard`] that
//!   releases on drop).
//! - [`RenewingGuard`]: a hold renewed every TTL/3 by its own thread, which
//!   says when it is lost (a flag, a channel, a callback). `dlm run` is
//!   built on it.
//! - `AsyncClient` and `AsyncHandle` (feature **`tokio`**): `Client`'s
//!   surface with `async` methods, sharing all of the protocol code.
//! - [`identity`]: identity files for authentication (`Name`/`Identity`).
//! - A typed [`Error`], and a [`ValueCodec`] for stored values.
//!
//! ```no_run
//! use std::time::Duration;
//! use jackrabbit_dlm::client::Locker;
//!
//! let mut jobs = Locker::builder("jobs").host("127.0.0.1").port(37373).build()?;
//! {
//!     let guard = jobs.lock_guard(Duration::from_secs(30))?;
//!     println!("holding jobs with fencing token {:?}", guard.token());
//! } // released here, also on panic
//! # Ok::<(), jackrabbit_dlm::client::Error>(())
//! ```
//!
//! # Features
//!
//! | feature | enables |
//! | --- | --- |
//! | `client` | this module: `Client`, `Locker`, `RenewingGuard`, `identity` |
//! | `tokio` | `AsyncClient`, `AsyncHandle` and `ClientBuilder::build_async` (implies `client`; off by default) |
//!
//! A program that needs only the client depends on the crate with
//! `default-features = false, features = ["client"]` (add `"tokio"` for the
//! async client) and builds none of the server's crates.
//!
//! # Working with upstream servers
//!
//! Every request carries `Expire` (`"0"` where it does not matter), as the
//! Python client's do; a `Locked` reply without a `Token` is a hold without
//! a fencing token (`None` wherever a token is returned); `NoData`,
//! `Corruption` and `Unavailable` are known statuses. The current upstream
//! server reads table-encoded lines only: build with
//! [`Encoding::Table`]. The default value codec is [`Table`], what the
//! Python client applies to every value, so values put by either client
//! read back in the other. [`LockerBuilder::name`] and
//! [`LockerBuilder::identity_file`] (and the same on [`ClientBuilder`])
//! authenticate.
//!
//! # The connection
//!
//! A client connects on its first request and keeps that one connection
//! (with `TCP_NODELAY`) for every later request. Given several
//! [`endpoints`](ClientBuilder::endpoints) (the nodes of a cluster), it
//! connects to the first that accepts and moves on to the next when a
//! connection fails or a node answers `Unavailable`. It sends a request
//! again only when doing so cannot change what the request means:
//!
//! - Before reusing the connection it checks, without blocking, that the
//!   server has not closed it. A server that restarted or dropped an idle
//!   connection is noticed here, before anything is sent, and the request
//!   goes out on a new connection.
//! - If a request's line was not sent in full, the server did not act on
//!   it: it goes out again.
//! - If the connection closes after the request went out and before the
//!   reply came back, the server may have acted; so may a cluster that
//!   answered `Unavailable`. `Lock`, `TestLock`, `Put`, `Get`, `Version`
//!   and `Stats` are sent again: for a fixed ID, doing them twice leaves
//!   the same state and gives the same answer as doing them once (a second
//!   `Lock` by the holder keeps the hold and its token). `Unlock` and
//!   `Erase` are not: if the first copy did release or erase, another ID
//!   may have taken the name since, and the repeat would answer `NotOwner`
//!   for a release that happened. The caller gets the I/O error (or the
//!   `Unavailable` status) instead, and the next call starts afresh.
//! - A read timeout is never followed by a resend: the reply may still be
//!   on its way, so the connection is dropped.
//!
//! A request is sent at most once more than there are endpoints (twice,
//! with one). In a [`Pipeline`] each request follows these rules on its
//! own; the answered ones keep their answers.
//!
//! # Patience
//!
//! [`Locker::lock`] (and [`Client::lock`]) is the patient mode of the
//! Python client: on a connection failure or `NotOwner` it sleeps
//! [`retry_sleep`](LockerBuilder::retry_sleep) and tries again, up to
//! [`retries`](LockerBuilder::retries) more times. `try_lock` tries once.
//! `lock_wait` lets the server do the waiting: the request queues, first
//! come first served, and is answered the moment the lock is free.
//!
//! # The modules
//!
//! - `locker`, `handles` (`Client`, `Handle`), `async_client`: the client
//!   types, each turning calls into requests;
//! - `builder`, `setup`: the settings, their defaults, the setters both
//!   builders share, and the random default ID;
//! - `pipeline`: [`Pipeline`] and the part of sending every transport
//!   shares; `answer`: what each reply means, for every client type;
//! - `connection`: the endpoints, the TCP connection and the resend policy
//!   above (`Exchange`, without I/O, driven by the blocking link here and
//!   by the tokio one);
//! - `wire`: request lines out, reply lines in (pure, tested without a
//!   server);
//! - `renew`: [`RenewingGuard`], the one renewal loop;
//! - `codec`: [`ValueCodec`] and the built-in codecs for stored values;
//! - `guard`: [`LockGuard`], a hold released on drop;
//! - `identity`: identity files; `error`: [`Error`] and [`ErrorKind`].

#![deny(missing_docs)]

mod answer;
#[cfg(feature = "tokio")]
mod async_client;
mod builder;
mod codec;
mod connection;
mod error;
mod guard;
mod handles;
pub mod identity;
mod locker;
mod pipeline;
mod renew;
mod setup;
mod wire;

pub use self::answer::{Membership, Outcome};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use self::async_client::{AsyncClient, AsyncHandle};
pub use self::builder::LockerBuilder;
pub use self::codec::{Base64, FnCodec, Identity, Table, ValueCodec};
pub use self::error::{BoxError, Error, ErrorKind};
pub use self::guard::LockGuard;
pub use self::handles::{Client, ClientBuilder, Handle};
pub use self::locker::Locker;
pub use self::pipeline::Pipeline;
pub use self::renew::{Lost, RenewingGuard};
pub use crate::protocol::DEFAULT_PORT;
pub use crate::protocol::codec::Encoding;
pub use crate::protocol::reply::{FencingToken, Status};
