//! The only module that does network I/O: one `mio` reactor thread owns
//! every socket, the session (and through it the store) and the statistics
//! log.
//!
//! - [`reactor`]: the event loop, accept/read/write, limits, signals.
//! - [`start`]: how a server runs (binary or in-process), the handle that
//!   stops it, and why it could not start.
//! - [`clock`]: the reactor's clock, monotonic or driven by a test.
//! - [`identity_dir`]: reads the identity files of `--identity-dir`.
//! - [`stats_log`]: the statistics log, `JackrabbitDLM.log`.
//! - [`audit`]: `--audit`, the interval's refusals by client address.
//! - [`system`]: what start-up asks of the operating system (address
//!   resolution, physical memory, the wall clock for the first token).
//! - [`metrics`]: the metrics port (`--metrics`): Prometheus metrics,
//!   `/livez` and `/readyz`, served from the reactor's own `Poll`.
//! - [`systemd`]: socket activation (adopting fd 3) and `READY=1`.

pub mod audit;
pub mod clock;
pub mod cluster;
pub mod identity_dir;
pub mod members;
pub mod metrics;
pub mod reactor;
pub mod start;
pub mod stats_log;
pub mod system;
pub mod systemd;

pub use clock::ManualClock;
pub use reactor::Server;
pub use start::{Control, RunMode, StartError};
