//! `JackrabbitDLM.log`: the start-up line, one statistics line per interval,
//! and the shutdown line. Counts only: no name, ID or value ever gets here.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::SystemTime;

use super::system;
use crate::stats::{Counters, interval_pairs, timestamp_at_offset};

/// File name of the statistics log inside `--log-dir`.
pub const LOG_FILE: &str = "JackrabbitDLM.log";

/// The statistics log, appended to.
pub struct StatsLog {
    file: File,
    /// Totals at the previous interval line.
    previous: Counters,
    /// Time stamps in UTC (`--log-utc`) rather than local time.
    utc: bool,
}

impl StatsLog {
    /// Opens (creating if needed) `dir/JackrabbitDLM.log` for appending.
    pub fn open(dir: &Path, utc: bool) -> io::Result<StatsLog> {
        std::fs::create_dir_all(dir).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
        })?;
        let path = dir.join(LOG_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
            })?;
        Ok(StatsLog {
            file,
            previous: Counters::default(),
            utc,
        })
    }

    /// Appends `text` after a timestamp, as one line. A failed write is
    /// reported on stderr and otherwise ignored: losing a log line must not
    /// stop the lock server.
    pub fn line(&mut self, text: &str) {
        let now = SystemTime::now();
        let offset = if self.utc { 0 } else { system::utc_offset(now) };
        let stamp = timestamp_at_offset(now, offset);
        let line = if text.is_empty() {
            format!("{stamp}\n")
        } else {
            format!("{stamp} {text}\n")
        };
        if let Err(e) = self.file.write_all(line.as_bytes()) {
            log::warn!("cannot write {LOG_FILE}: {e}");
        }
    }

    /// Appends the interval line: what changed since the previous one, and
    /// the current `ALock`/`AData`.
    pub fn interval(&mut self, totals: &Counters) {
        let delta = totals.since(&self.previous);
        self.previous = totals.clone();
        self.line(&interval_pairs(&delta));
    }
}
