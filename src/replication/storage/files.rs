//! The files of a data directory: their names, what a directory holds, and
//! writing a whole file so that it is either all there or not at all.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::StorageError;

const SEGMENT_PREFIX: &str = "log-";
const SEGMENT_SUFFIX: &str = ".wal";
const SNAPSHOT_PREFIX: &str = "snap-";
const SNAPSHOT_SUFFIX: &str = ".snap";
/// A file being written; renamed to its name once it is complete and synced,
/// so one found at start-up is an interrupted write and is removed.
const TEMP_SUFFIX: &str = ".tmp";
/// Held with `flock` while a process has the directory open.
pub(super) const LOCK_FILE: &str = "lock";

/// The segment that continues the snapshot at `base`. Indexes are padded to
/// 20 digits so that names sort as numbers do.
pub(super) fn segment_name(base: u64) -> String {
    format!("{SEGMENT_PREFIX}{base:020}{SEGMENT_SUFFIX}")
}

pub(super) fn snapshot_name(index: u64) -> String {
    format!("{SNAPSHOT_PREFIX}{index:020}{SNAPSHOT_SUFFIX}")
}

fn index_in(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What a data directory holds, by kind; other files are left alone.
#[derive(Debug, Default)]
pub(super) struct Listing {
    /// (base, path), in no order.
    pub segments: Vec<(u64, PathBuf)>,
    /// (index, path), in no order.
    pub snapshots: Vec<(u64, PathBuf)>,
    /// Interrupted writes of ours.
    pub temps: Vec<PathBuf>,
}

impl Listing {
    pub fn read(dir: &Path) -> Result<Listing, StorageError> {
        let mut listing = Listing::default();
        let entries = fs::read_dir(dir).map_err(|e| StorageError::io(dir, "list", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io(dir, "list", e))?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if let Some(ours) = name.strip_suffix(TEMP_SUFFIX) {
                if index_in(ours, SEGMENT_PREFIX, SEGMENT_SUFFIX).is_some()
                    || index_in(ours, SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX).is_some()
                {
                    listing.temps.push(path);
                }
            } else if let Some(base) = index_in(name, SEGMENT_PREFIX, SEGMENT_SUFFIX) {
                listing.segments.push((base, path));
            } else if let Some(index) = index_in(name, SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX) {
                listing.snapshots.push((index, path));
            }
        }
        Ok(listing)
    }
}

/// Counts the fsyncs and bytes written, for the caller's metrics.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counters {
    pub fsyncs: u64,
    pub bytes_written: u64,
}

impl Counters {
    pub fn sync_file(&mut self, file: &File, path: &Path) -> Result<(), StorageError> {
        self.fsyncs += 1;
        file.sync_data()
            .map_err(|e| StorageError::io(path, "fsync", e))
    }

    /// Makes the directory's entries (a file created, renamed or removed)
    /// durable.
    pub fn sync_dir(&mut self, dir: &Path) -> Result<(), StorageError> {
        self.fsyncs += 1;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StorageError::io(dir, "fsync the directory", e))
    }

    pub fn write(
        &mut self,
        file: &mut File,
        path: &Path,
        bytes: &[u8],
    ) -> Result<(), StorageError> {
        file.write_all(bytes)
            .map_err(|e| StorageError::io(path, "write", e))?;
        self.bytes_written += bytes.len() as u64;
        Ok(())
    }

    /// Writes `parts` as the whole of `dir/name`, atomically: a temporary
    /// file, fsync, rename, fsync of the directory. Returns the file, open
    /// for writing at its end.
    pub fn write_atomically(
        &mut self,
        dir: &Path,
        name: &str,
        parts: &[&[u8]],
    ) -> Result<(File, PathBuf), StorageError> {
        let path = dir.join(name);
        let temp = dir.join(format!("{name}{TEMP_SUFFIX}"));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .map_err(|e| StorageError::io(&temp, "create", e))?;
        for part in parts {
            self.write(&mut file, &temp, part)?;
        }
        self.sync_file(&file, &temp)?;
        fs::rename(&temp, &path).map_err(|e| StorageError::io(&temp, "rename", e))?;
        self.sync_dir(dir)?;
        Ok((file, path))
    }
}

/// Removes a file that is no longer needed; one already gone is fine.
pub(super) fn remove(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StorageError::io(path, "remove", e)),
        _ => Ok(()),
    }
}

/// Takes an exclusive `flock` on `dir/lock`, so that a second server on the
/// same directory stops at start-up instead of interleaving its writes.
pub(super) fn lock(dir: &Path) -> Result<File, StorageError> {
    use std::os::fd::AsRawFd;
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| StorageError::io(&path, "create", e))?;
    // SAFETY: flock on a descriptor this `File` owns and keeps open; it
    // touches no memory.
    let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if taken != 0 {
        let e = io::Error::last_os_error();
        return Err(StorageError::io(
            &path,
            "lock (is another server using this directory?)",
            e,
        ));
    }
    Ok(file)
}
