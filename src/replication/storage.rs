//! The Raft log and snapshots on disk, under raft-rs: [`DiskStorage`].
//!
//! What it is for: a node restarts with everything it acknowledged. The
//! reactor thread persists each `Ready` through it (entries, hard state,
//! an installed snapshot), calls [`DiskStorage::sync`] once, and only then
//! sends what depends on it; every `--snapshot-after` applied entries it
//! hands over the store's snapshot with [`DiskStorage::compact`]. Raft reads
//! the log back through [`raft::Storage`], answered from memory: the log
//! since the last snapshot is small, and is kept whole.
//!
//! What it never does: fsync per record (one `sync` makes a turn's records
//! durable with one fsync of the log file; directory fsyncs only when a
//! file was created or renamed), read a clock, spawn a thread, panic on
//! what it finds on disk, or drop data it cannot explain. A torn tail (the
//! process killed mid-write: the last record of the log cut short or with a
//! bad checksum, nothing valid after it) is what an unacknowledged write
//! leaves, and is cut off; anything else that is wrong (a bad checksum with
//! more records after it, a bad header, an entry that does not follow, a
//! snapshot whose checksum fails) stops [`DiskStorage::open`] with a
//! [`StorageError`] naming the file and the byte offset.
//!
//! The directory holds one snapshot `snap-<index>.snap` (none before the
//! first compaction), one log segment `log-<base>.wal` continuing it, where
//! `base` is the snapshot's index, and `lock`. A new segment (at compaction
//! and when a snapshot is installed) restates the hard state, the
//! configuration and the entries kept, so it stands alone with its
//! snapshot. Every new file is written as a temporary, fsynced and renamed;
//! the older files are removed only after, so a crash at any point leaves
//! a state [`DiskStorage::open`] recovers (a leftover temporary is
//! removed; a snapshot newer than the segment finishes the interrupted
//! compaction). Disk use is one snapshot plus the entries since it. The
//! bytes are in [`format`](mod@format).

mod error;
mod files;
pub mod format;
#[cfg(test)]
mod tests;

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use protobuf::Message;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState};

pub use error::StorageError;
pub use format::{decode_segment, decode_snapshot};

use files::{Counters, Listing};

/// Records buffered past this many bytes are written to the file before
/// `sync` (still without an fsync), so a large `Ready` is not held twice in
/// memory.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// The durable Raft storage of one node: see the module documentation.
#[derive(Debug)]
pub struct DiskStorage {
    dir: PathBuf,
    hard_state: HardState,
    conf_state: ConfState,
    /// The newest snapshot (metadata index 0 and no data before the first).
    snapshot: Snapshot,
    /// The log after the snapshot: entry `i` has index `snapshot + 1 + i`.
    entries: Vec<Entry>,
    /// The bytes of the entries' data in `entries`.
    entry_bytes: u64,
    /// The segment records are appended to.
    log: File,
    log_path: PathBuf,
    /// Records not yet written to `log`.
    pending: Vec<u8>,
    /// Records written to `log` since its last fsync.
    unsynced: bool,
    hard_state_dirty: bool,
    conf_state_dirty: bool,
    /// A write or fsync failed: what is on disk is unknown.
    failed: bool,
    counters: Counters,
    _lock: File,
}

impl DiskStorage {
    /// Opens the data directory `dir`, creating it if missing, and recovers
    /// the hard state, the configuration, the newest snapshot and the log
    /// after it (see the module documentation for what is repaired and what
    /// is refused).
    pub fn open(dir: &Path) -> Result<DiskStorage, StorageError> {
        let mut counters = Counters::default();
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, "create", e))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                counters.sync_dir(parent)?;
            }
        }
        let lock = files::lock(dir)?;
        let listing = Listing::read(dir)?;
        // A temporary is renamed only once complete and synced: one still
        // here was never part of the state.
        for temp in &listing.temps {
            files::remove(temp)?;
        }
        let newest_snapshot = listing.snapshots.iter().max_by_key(|(index, _)| *index);
        let snapshot = match newest_snapshot {
            Some((index, path)) => read_snapshot(path, *index)?,
            None => Snapshot::default(),
        };
        let snapshot_index = snapshot.get_metadata().index;
        let newest_segment = listing.segments.iter().max_by_key(|(base, _)| *base);

        let (state, log, log_path) = match newest_segment {
            None if snapshot_index == 0 => {
                let state = Recovered::default();
                let (log, path) = write_segment(&mut counters, dir, 0, &state)?;
                (state, log, path)
            }
            None => {
                return Err(StorageError::inconsistent(
                    dir,
                    format!("a snapshot at index {snapshot_index} but no log segment"),
                ));
            }
            Some((base, path)) if *base > snapshot_index => {
                return Err(StorageError::inconsistent(
                    path,
                    format!(
                        "the log continues a snapshot at index {base}, \
                         but the newest snapshot is at {snapshot_index}"
                    ),
                ));
            }
            Some((base, path)) => {
                let segment = read_segment(&mut counters, path, *base)?;
                if *base == snapshot_index {
                    let state = Recovered::from_segment(segment, &snapshot);
                    let log = OpenOptions::new()
                        .append(true)
                        .open(path)
                        .map_err(|e| StorageError::io(path, "open", e))?;
                    (state, log, path.clone())
                } else {
                    // A compaction or an installed snapshot was interrupted
                    // after its snapshot was renamed: finish it.
                    let state = Recovered::from_older_segment(segment, &snapshot);
                    let (log, new_path) =
                        write_segment(&mut counters, dir, snapshot_index, &state)?;
                    (state, log, new_path)
                }
            }
        };
        // What an interrupted compaction left behind.
        for (base, path) in &listing.segments {
            if *base < snapshot_index {
                files::remove(path)?;
            }
        }
        for (index, path) in &listing.snapshots {
            if *index < snapshot_index {
                files::remove(path)?;
            }
        }
        Ok(DiskStorage {
            dir: dir.to_owned(),
            hard_state: state.hard_state,
            conf_state: state.conf_state,
            snapshot,
            entry_bytes: data_bytes(&state.entries),
            entries: state.entries,
            log,
            log_path,
            pending: Vec::new(),
            unsynced: false,
            hard_state_dirty: false,
            conf_state_dirty: false,
            failed: false,
            counters,
            _lock: lock,
        })
    }

    /// Nothing was ever stored here: no hard state, no configuration, no
    /// entry, no snapshot. A fresh node is [`bootstrap`](Self::bootstrap)ped.
    pub fn is_fresh(&self) -> bool {
        self.hard_state == HardState::default()
            && self.conf_state == ConfState::default()
            && self.entries.is_empty()
            && self.snapshot.get_metadata().index == 0
    }

    /// Gives a fresh node its first configuration, `voters`, durably (this
    /// syncs). Refused on a node that is not fresh.
    pub fn bootstrap(&mut self, voters: &[u64]) -> Result<(), StorageError> {
        if !self.is_fresh() {
            return Err(StorageError::refused(
                &self.dir,
                "bootstrap of a node that already has state".to_owned(),
            ));
        }
        self.set_conf_state(ConfState {
            voters: voters.to_vec(),
            ..ConfState::default()
        });
        self.sync()
    }

    /// The directory this storage is in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The newest snapshot: the store's state at its index, which a
    /// restarting node restores before applying the log after it (index 0
    /// and no data when there is none).
    pub fn latest_snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The hard state as last set (durable after the next `sync`).
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The bytes of the entries kept since the snapshot (their data): what
    /// the log holds in memory, and what a compaction would drop.
    pub fn log_bytes(&self) -> u64 {
        self.entry_bytes
    }

    /// fsyncs made since `open` (files and directories).
    pub fn fsyncs(&self) -> u64 {
        self.counters.fsyncs
    }

    /// Bytes written since `open` (log records, new segments, snapshots).
    pub fn bytes_written(&self) -> u64 {
        self.counters.bytes_written
    }

    fn check_usable(&self) -> Result<(), StorageError> {
        if self.failed {
            Err(StorageError::failed(&self.log_path))
        } else {
            Ok(())
        }
    }

    fn first_index(&self) -> u64 {
        self.snapshot.get_metadata().index + 1
    }

    fn last_index(&self) -> u64 {
        self.snapshot.get_metadata().index + self.entries.len() as u64
    }

    /// Appends `entries` (a `Ready`'s), replacing any entries from the
    /// first one's index on, as raft asks when a leader overwrites a
    /// follower's conflicting suffix. Buffered: durable after `sync`.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.check_usable()?;
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let (first_index, last_index) = (self.first_index(), self.last_index());
        let follows = entries.windows(2).all(|w| w[1].index == w[0].index + 1);
        if first.index < first_index || first.index > last_index + 1 || !follows {
            return Err(StorageError::refused(
                &self.log_path,
                format!(
                    "entries from {} do not continue the log {first_index}..={last_index}",
                    first.index
                ),
            ));
        }
        let start = self.pending.len();
        for entry in entries {
            if let Err(e) = format::encode_entry(entry, &mut self.pending) {
                self.pending.truncate(start);
                return Err(StorageError::encode(&self.log_path, e));
            }
        }
        let keep = usize::try_from(first.index - first_index).unwrap_or(self.entries.len());
        if let Some(dropped) = self.entries.get(keep..) {
            self.entry_bytes = self.entry_bytes.saturating_sub(data_bytes(dropped));
        }
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
        self.entry_bytes = self.entry_bytes.saturating_add(data_bytes(entries));
        if self.pending.len() >= WRITE_BUFFER_BYTES {
            self.write_pending()?;
        }
        Ok(())
    }

    /// Sets the hard state; it is written once, at the next `sync`, however
    /// many times it was set.
    pub fn set_hard_state(&mut self, hard_state: &HardState) {
        if *hard_state != self.hard_state {
            self.hard_state = hard_state.clone();
            self.hard_state_dirty = true;
        }
    }

    /// Sets the commit index (a `LightReady`'s), written at the next `sync`.
    pub fn set_commit(&mut self, commit: u64) {
        if commit != self.hard_state.commit {
            self.hard_state.commit = commit;
            self.hard_state_dirty = true;
        }
    }

    /// Sets the configuration `initial_state` reports, written at the next
    /// `sync` (after `apply_conf_change`; `bootstrap` sets the first).
    pub fn set_conf_state(&mut self, conf_state: ConfState) {
        if conf_state != self.conf_state {
            self.conf_state = conf_state;
            self.conf_state_dirty = true;
        }
    }

    /// Makes everything written since the last `sync` durable: the buffered
    /// records and the hard state and configuration if they changed, with
    /// one write and one fsync of the log file. Nothing to do, no fsync.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.write()?;
        if self.unsynced {
            let synced = self.counters.sync_file(&self.log, &self.log_path);
            // After a failed fsync the kernel may have dropped the dirty
            // pages: retrying would report success for lost data.
            if synced.is_err() {
                self.failed = true;
            }
            synced?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Like [`DiskStorage::sync`] without the fsync: writes what `sync`
    /// would, and hands over the log file to fsync, if it needs one; the
    /// caller is then the one to fsync it before it counts on the writes.
    /// With `must_sync` false (nothing raft needs durable yet: a commit
    /// index moved) it only writes, and a later fsync covers it.
    pub fn write_for_sync(&mut self, must_sync: bool) -> Result<Option<File>, StorageError> {
        // A change of membership is made durable at once all the same.
        let must_sync = must_sync || self.conf_state_dirty;
        self.write()?;
        if !self.unsynced || !must_sync {
            return Ok(None);
        }
        let file = self
            .log
            .try_clone()
            .map_err(|e| StorageError::io(&self.log_path, "duplicate the handle of", e))?;
        self.unsynced = false;
        Ok(Some(file))
    }

    /// Writes the buffered records, and the hard state and configuration if
    /// they changed, to the log file (no fsync).
    fn write(&mut self) -> Result<(), StorageError> {
        self.check_usable()?;
        // After the entries: the commit index may name entries of this turn.
        if self.hard_state_dirty {
            format::encode_hard_state(&self.hard_state, &mut self.pending)
                .map_err(|e| StorageError::encode(&self.log_path, e))?;
            self.hard_state_dirty = false;
        }
        if self.conf_state_dirty {
            format::encode_conf_state(&self.conf_state, &mut self.pending)
                .map_err(|e| StorageError::encode(&self.log_path, e))?;
            self.conf_state_dirty = false;
        }
        self.write_pending()
    }

    fn write_pending(&mut self) -> Result<(), StorageError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let written = self
            .counters
            .write(&mut self.log, &self.log_path, &self.pending);
        // A short or failed write leaves a record half there; appending
        // after it would turn a torn tail into corruption in the middle.
        if written.is_err() {
            self.failed = true;
        }
        written?;
        self.pending.clear();
        self.unsynced = true;
        Ok(())
    }

    /// Installs a snapshot received from the leader (a `Ready`'s): writes it
    /// durably, and replaces the log with an empty one after it, which
    /// restates the hard state (its commit and term raised to the
    /// snapshot's) and the snapshot's configuration. Durable on return.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), StorageError> {
        self.check_usable()?;
        let meta = snapshot.get_metadata();
        if meta.index <= self.snapshot.get_metadata().index {
            return Err(StorageError::refused(
                &self.dir,
                format!(
                    "snapshot at index {} is not newer than the one at {}",
                    meta.index,
                    self.snapshot.get_metadata().index
                ),
            ));
        }
        let index = meta.index;
        if index < self.hard_state.commit {
            // raft installs only snapshots past its commit index; below it,
            // the committed entries after the snapshot would be lost.
            return Err(StorageError::refused(
                &self.dir,
                format!(
                    "snapshot at index {index}, below the commit index {}",
                    self.hard_state.commit
                ),
            ));
        }
        self.write_snapshot(meta, &snapshot.data)?;
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = self.hard_state.commit.max(index);
        self.conf_state = meta.get_conf_state().clone();
        self.entries.clear();
        self.entry_bytes = 0;
        let old = self.replace_snapshot(snapshot);
        self.start_segment(index, old)
    }

    /// Compacts the log at `index` with `data`, the store's snapshot of the
    /// state applied up to `index`, and `conf_state`, the configuration
    /// then: writes the snapshot durably, starts a new segment after it
    /// (restating the hard state and the entries after `index`), removes
    /// the older segment and snapshot. Everything written before is durable
    /// on return. `index` at or below the current snapshot does nothing;
    /// past the commit index (or the log) it is refused.
    pub fn compact(
        &mut self,
        index: u64,
        conf_state: ConfState,
        data: Vec<u8>,
    ) -> Result<(), StorageError> {
        self.check_usable()?;
        let first_index = self.first_index();
        if index < first_index {
            return Ok(());
        }
        if index > self.last_index() || index > self.hard_state.commit {
            return Err(StorageError::refused(
                &self.dir,
                format!(
                    "compaction at {index}, past the commit index {} or the last entry {}",
                    self.hard_state.commit,
                    self.last_index()
                ),
            ));
        }
        let position = usize::try_from(index - first_index).unwrap_or(usize::MAX);
        let term = self.entries.get(position).map_or(0, |e| e.term);
        let mut meta = SnapshotMetadata {
            index,
            term,
            ..SnapshotMetadata::default()
        };
        meta.set_conf_state(conf_state.clone());
        self.write_snapshot(&meta, &data)?;
        let mut snapshot = Snapshot::default();
        snapshot.set_metadata(meta);
        snapshot.data = data.into();
        let dropped = self.entries.get(..=position).map_or(0, data_bytes);
        self.entry_bytes = self.entry_bytes.saturating_sub(dropped);
        self.entries.drain(..=position);
        self.conf_state = conf_state;
        let old = self.replace_snapshot(snapshot);
        self.start_segment(index, old)
    }

    fn write_snapshot(&mut self, meta: &SnapshotMetadata, data: &[u8]) -> Result<(), StorageError> {
        let name = files::snapshot_name(meta.index);
        let (head, crc) = format::encode_snapshot_head(meta, data)
            .map_err(|e| StorageError::encode(&self.dir.join(&name), e))?;
        let written = self
            .counters
            .write_atomically(&self.dir, &name, &[&head, data, &crc]);
        written.map(drop)
    }

    /// Puts in the new snapshot; returns the index of the one it replaced.
    fn replace_snapshot(&mut self, snapshot: Snapshot) -> u64 {
        std::mem::replace(&mut self.snapshot, snapshot)
            .get_metadata()
            .index
    }

    /// Starts the segment after the snapshot at `base` with the whole state
    /// restated, then removes the segment and snapshot before it. The
    /// buffered records are in the new segment, so they are dropped.
    fn start_segment(&mut self, base: u64, old_snapshot: u64) -> Result<(), StorageError> {
        let state = Recovered {
            hard_state: self.hard_state.clone(),
            conf_state: self.conf_state.clone(),
            entries: std::mem::take(&mut self.entries),
        };
        let written = write_segment(&mut self.counters, &self.dir, base, &state);
        self.entries = state.entries;
        if written.is_err() {
            // The in-memory state is now ahead of the disk's.
            self.failed = true;
        }
        let (log, path) = written?;
        let old_log = std::mem::replace(&mut self.log_path, path);
        self.log = log;
        self.pending.clear();
        self.unsynced = false;
        self.hard_state_dirty = false;
        self.conf_state_dirty = false;
        files::remove(&old_log)?;
        if old_snapshot > 0 {
            files::remove(&self.dir.join(files::snapshot_name(old_snapshot)))?;
        }
        Ok(())
    }
}

/// The state a segment (with its snapshot) leaves.
#[derive(Debug, Default)]
struct Recovered {
    hard_state: HardState,
    conf_state: ConfState,
    entries: Vec<Entry>,
}

impl Recovered {
    /// A segment that continues `snapshot`: its configuration is the newest
    /// one set, else the snapshot's.
    fn from_segment(segment: format::DecodedSegment, snapshot: &Snapshot) -> Recovered {
        Recovered {
            hard_state: segment.hard_state.unwrap_or_default(),
            conf_state: segment
                .conf_state
                .unwrap_or_else(|| snapshot.get_metadata().get_conf_state().clone()),
            entries: segment.entries,
        }
    }

    /// A segment from before `snapshot` (an interrupted compaction, or an
    /// interrupted install of a leader's snapshot): the entries the
    /// snapshot covers go; those after it stay only if the segment agrees
    /// with the snapshot at its index (else they are another leader's
    /// suffix, which the snapshot replaced).
    fn from_older_segment(segment: format::DecodedSegment, snapshot: &Snapshot) -> Recovered {
        let meta = snapshot.get_metadata();
        let mut hard_state = segment.hard_state.unwrap_or_default();
        hard_state.term = hard_state.term.max(meta.term);
        hard_state.commit = hard_state.commit.max(meta.index);
        let covered = usize::try_from(meta.index - segment.base).unwrap_or(usize::MAX);
        let agrees = covered
            .checked_sub(1)
            .and_then(|at| segment.entries.get(at))
            .is_some_and(|e| e.term == meta.term);
        let mut entries = segment.entries;
        if agrees {
            entries.drain(..covered);
        } else {
            entries.clear();
            // Only uncommitted entries can disagree with a snapshot, so this
            // changes nothing in a state raft wrote; it keeps the commit
            // index inside the log whatever the files say.
            hard_state.commit = meta.index;
        }
        Recovered {
            hard_state,
            conf_state: meta.get_conf_state().clone(),
            entries,
        }
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, StorageError> {
    fs::read(path).map_err(|e| StorageError::io(path, "read", e))
}

fn read_snapshot(path: &Path, index: u64) -> Result<Snapshot, StorageError> {
    let snapshot =
        format::decode_snapshot(&read_file(path)?).map_err(|e| StorageError::corrupt(path, e))?;
    if snapshot.get_metadata().index != index {
        return Err(StorageError::inconsistent(
            path,
            format!(
                "the snapshot inside is at index {}",
                snapshot.get_metadata().index
            ),
        ));
    }
    Ok(snapshot)
}

/// Reads and replays a segment; cuts a torn tail off the file.
fn read_segment(
    counters: &mut Counters,
    path: &Path,
    base: u64,
) -> Result<format::DecodedSegment, StorageError> {
    let segment =
        format::decode_segment(&read_file(path)?).map_err(|e| StorageError::corrupt(path, e))?;
    if segment.base != base {
        return Err(StorageError::inconsistent(
            path,
            format!("the segment inside continues index {}", segment.base),
        ));
    }
    if segment.torn.is_some() {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| StorageError::io(path, "open", e))?;
        file.set_len(segment.valid_len)
            .map_err(|e| StorageError::io(path, "cut the torn tail of", e))?;
        counters.sync_file(&file, path)?;
    }
    Ok(segment)
}

fn write_segment(
    counters: &mut Counters,
    dir: &Path,
    base: u64,
    state: &Recovered,
) -> Result<(File, PathBuf), StorageError> {
    let name = files::segment_name(base);
    let bytes = format::encode_segment(base, &state.hard_state, &state.conf_state, &state.entries)
        .map_err(|e| StorageError::encode(&dir.join(&name), e))?;
    counters.write_atomically(dir, &name, &[&bytes])
}

fn data_bytes(entries: &[Entry]) -> u64 {
    entries.iter().map(|e| e.data.len() as u64).sum()
}

fn raft_error(kind: raft::StorageError) -> raft::Error {
    raft::Error::Store(kind)
}

/// Answered from memory; nothing here touches the disk.
impl raft::Storage for DiskStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let first = self.first_index();
        if low < first {
            return Err(raft_error(raft::StorageError::Compacted));
        }
        // raft never asks past the end; an answer beats MemStorage's panic.
        if high > self.last_index() + 1 || low > high {
            return Err(raft_error(raft::StorageError::Unavailable));
        }
        let from = usize::try_from(low - first).unwrap_or(usize::MAX);
        let to = usize::try_from(high - first).unwrap_or(usize::MAX);
        let Some(wanted) = self.entries.get(from..to) else {
            return Err(raft_error(raft::StorageError::Unavailable));
        };
        let max_size = max_size.into().unwrap_or(u64::MAX);
        // At least one entry, however large, then as many as fit.
        let (mut count, mut size) = (0, 0u64);
        for entry in wanted {
            size = size.saturating_add(u64::from(entry.compute_size()));
            if count > 0 && size > max_size {
                break;
            }
            count += 1;
        }
        Ok(wanted[..count].to_vec())
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        let meta = self.snapshot.get_metadata();
        if index == meta.index {
            return Ok(meta.term);
        }
        if index < meta.index {
            return Err(raft_error(raft::StorageError::Compacted));
        }
        let position = usize::try_from(index - meta.index - 1).unwrap_or(usize::MAX);
        self.entries
            .get(position)
            .map(|e| e.term)
            .ok_or(raft_error(raft::StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(DiskStorage::first_index(self))
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(DiskStorage::last_index(self))
    }

    /// The newest snapshot (its data is shared, not copied). Raft must not
    /// be given an empty one, nor one older than it asks for: it then tries
    /// again later.
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let index = self.snapshot.get_metadata().index;
        if index == 0 || index < request_index {
            return Err(raft_error(
                raft::StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}
