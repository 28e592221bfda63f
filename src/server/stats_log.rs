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
    /// The highest `MemoryMax` sample since the previous interval line:
    /// the line shows the interval's highest, as upstream's did.
    interval_memory_max: u64,
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
            interval_memory_max: 0,
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

    /// Notes a sample of resident memory, in hundredths of a percent (see
    /// `MemoryMax`), for the next interval line.
    pub fn note_memory(&mut self, hundredths: u64) {
        self.interval_memory_max = self.interval_memory_max.max(hundredths);
    }

    /// Appends the interval line: what changed since the previous one, the
    /// current `ALock`/`AData`, and the interval's highest `MemoryMax`.
    pub fn interval(&mut self, totals: &Counters) {
        let mut delta = totals.since(&self.previous);
        delta.memory_max = std::mem::take(&mut self.interval_memory_max);
        self.previous = totals.clone();
        self.line(&interval_pairs(&delta));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_line_shows_the_interval_highest_memory_max() {
        let dir = std::env::temp_dir().join(format!("jdlm-stats-log-{}", std::process::id()));
        let mut log = StatsLog::open(&dir, true).unwrap();
        let mut totals = Counters {
            memory_max: 125,
            ..Counters::default()
        };
        log.note_memory(90);
        log.note_memory(125);
        log.interval(&totals);
        log.note_memory(80);
        log.interval(&totals);
        totals.lock = 1;
        log.interval(&totals);
        let text = std::fs::read_to_string(dir.join(LOG_FILE)).unwrap();
        let pairs: Vec<&str> = text.lines().map(|l| &l[27..]).collect();
        assert_eq!(pairs, ["MemoryMax: 1.25", "MemoryMax: 0.80", "Lock: 1"]);
        let _ = std::fs::remove_dir_all(dir);
    }
}
