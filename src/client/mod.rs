//! The Rust client: a [`Locker`] names one lock (and the data item of the
//! same name) on a Jackrabbit DLM server and speaks the protocol for it.
//!
//! It offers what the Python `Locker` offers, in Rust's terms: results
//! instead of status strings, a typed [`Error`], a guard that releases the
//! lock when it goes out of scope, and a [`ValueCodec`] for stored values.
//!
//! ```no_run
//! use std::time::Duration;
//! use jackrabbit_dlm::client::Locker;
//!
//! let mut jobs = Locker::builder("jobs").host("127.0.0.1").port(37373).build()?;
//! {
//!     let guard = jobs.lock_guard(Duration::from_secs(30))?;
//!     println!("holding jobs with fencing token {}", guard.token());
//! } // released here, also on panic
//! # Ok::<(), jackrabbit_dlm::client::Error>(())
//! ```
//!
//! # The connection
//!
//! A `Locker` connects on its first request and keeps that one connection
//! (with `TCP_NODELAY`) for every later request. It never reconnects behind
//! a request's back more than once, and only when doing so cannot change
//! what the request means:
//!
//! - Before reusing the connection it checks, without blocking, that the
//!   server has not closed it. A server that restarted or dropped an idle
//!   connection is noticed here, before anything is sent, and the request
//!   goes out on a new connection.
//! - If sending fails, the server never saw a complete line, so it did not
//!   act: reconnect and send again.
//! - If the connection closes after the request went out and before the
//!   reply came back, the server may have acted. `Lock`, `TestLock`, `Put`,
//!   `Get`, `Version` and `Stats` are sent again: for a fixed ID, doing them
//!   twice leaves the same state and gives the same answer as doing them
//!   once (a second `Lock` by the holder keeps the hold and its token).
//!   `Unlock` and `Erase` are not: if the first copy did release or erase,
//!   another ID may have taken the name since, and the repeat would answer
//!   `NotOwner` for a release that happened. The caller gets the I/O error
//!   instead, and the next call starts on a new connection.
//! - A read timeout is never followed by a resend: the reply may still be on
//!   its way, so the connection is dropped.
//!
//! # Patience
//!
//! [`Locker::lock`] is the patient mode of the Python client: on a
//! connection failure or `NotOwner` it sleeps
//! [`retry_sleep`](LockerBuilder::retry_sleep) and tries again, up to
//! [`retries`](LockerBuilder::retries) more times. [`Locker::try_lock`]
//! tries once. [`Locker::lock_wait`] lets the server do the waiting: the
//! request queues, first come first served, and is answered the moment the
//! lock is free.
//!
//! # The modules
//!
//! - `locker`: [`Locker`], what each request's answer means;
//! - `builder`: [`LockerBuilder`], the settings and their defaults, and the
//!   random default ID;
//! - `connection`: the TCP connection and the resend policy above, the one
//!   place that decides whether a request goes out again;
//! - `wire`: request lines out, reply lines in (pure, tested without a
//!   server);
//! - `codec`: [`ValueCodec`] and the built-in codecs for stored values;
//! - `guard`: [`LockGuard`], a hold released on drop;
//! - `error`: [`Error`] and [`ErrorKind`].

#![deny(missing_docs)]

mod builder;
mod codec;
mod connection;
mod error;
mod guard;
mod locker;
mod wire;

pub use self::builder::LockerBuilder;
pub use self::codec::{Base64, FnCodec, Identity, Table, ValueCodec};
pub use self::error::{BoxError, Error, ErrorKind};
pub use self::guard::LockGuard;
pub use self::locker::Locker;
pub use crate::protocol::DEFAULT_PORT;
pub use crate::protocol::codec::Encoding;
pub use crate::protocol::reply::{FencingToken, Status};
