//! DiskStorage on real files, each test in its own directory under the
//! system's temporary directory, removed at the end.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{Config, GetEntriesContext, RawNode, Storage};

use super::format::{self, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use super::{DiskStorage, data_bytes, files};

/// A directory of its own, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("jrdlm-storage-{}-{n}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.0)
            .expect("list")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry {
        index,
        term,
        data: data.to_vec().into(),
        ..Entry::default()
    }
}

fn entries(from: u64, to: u64, term: u64) -> Vec<Entry> {
    (from..=to)
        .map(|i| entry(i, term, format!("entry {i} of term {term}").as_bytes()))
        .collect()
}

fn hard_state(term: u64, vote: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote,
        commit,
        ..HardState::default()
    }
}

fn voters(ids: &[u64]) -> ConfState {
    ConfState {
        voters: ids.to_vec(),
        ..ConfState::default()
    }
}

fn snapshot_meta(index: u64, term: u64, ids: &[u64]) -> SnapshotMetadata {
    let mut meta = SnapshotMetadata {
        index,
        term,
        ..SnapshotMetadata::default()
    };
    meta.set_conf_state(voters(ids));
    meta
}

fn all_entries(storage: &DiskStorage) -> Vec<Entry> {
    let first = Storage::first_index(storage).expect("first");
    let last = Storage::last_index(storage).expect("last");
    storage
        .entries(first, last + 1, None, GetEntriesContext::empty(false))
        .expect("entries")
}

/// Everything raft reads, to compare two storages.
fn raft_view(storage: &DiskStorage) -> (HardState, ConfState, u64, u64, Vec<Entry>, u64) {
    let state = storage.initial_state().expect("initial state");
    (
        state.hard_state,
        state.conf_state,
        Storage::first_index(storage).expect("first"),
        Storage::last_index(storage).expect("last"),
        all_entries(storage),
        storage.latest_snapshot().get_metadata().index,
    )
}

fn open(dir: &TempDir) -> DiskStorage {
    DiskStorage::open(dir.path()).expect("open")
}

fn segment_path(dir: &TempDir, base: u64) -> PathBuf {
    dir.file(&files::segment_name(base))
}

/// A node with entries 1..=5 of term 1 (3 committed) and a vote, synced.
fn five_entries(dir: &TempDir) -> DiskStorage {
    let mut s = open(dir);
    s.bootstrap(&[1, 2, 3]).expect("bootstrap");
    s.append(&entries(1, 3, 1)).expect("append");
    s.set_hard_state(&hard_state(1, 2, 1));
    s.sync().expect("sync");
    s.append(&entries(4, 5, 1)).expect("append");
    s.set_commit(3);
    s.sync().expect("sync");
    s
}

#[test]
fn a_fresh_directory_is_fresh_until_bootstrapped() {
    let dir = TempDir::new("fresh");
    let mut s = open(&dir);
    assert!(s.is_fresh());
    assert_eq!(Storage::first_index(&s).unwrap(), 1);
    assert_eq!(Storage::last_index(&s).unwrap(), 0);
    drop(s);
    // Opened, never written: still fresh.
    s = open(&dir);
    assert!(s.is_fresh());
    s.bootstrap(&[1, 2, 3]).expect("bootstrap");
    assert!(!s.is_fresh());
    assert!(s.bootstrap(&[1]).is_err(), "bootstrap twice");
    drop(s);
    let s = open(&dir);
    assert!(!s.is_fresh());
    assert_eq!(s.initial_state().unwrap().conf_state, voters(&[1, 2, 3]));
}

#[test]
fn entries_and_hard_state_survive_a_reopen() {
    let dir = TempDir::new("round-trip");
    let s = five_entries(&dir);
    let before = raft_view(&s);
    assert_eq!(before.0, hard_state(1, 2, 3));
    assert_eq!(before.4, entries(1, 5, 1));
    drop(s);
    let s = open(&dir);
    assert_eq!(raft_view(&s), before);
    assert_eq!(s.term(4).unwrap(), 1);
    assert_eq!(s.term(0).unwrap(), 0);
    assert!(s.term(6).is_err());
}

#[test]
fn unsynced_writes_are_not_on_disk_but_synced_ones_are() {
    let dir = TempDir::new("unsynced");
    let mut s = five_entries(&dir);
    let fsyncs = s.fsyncs();
    s.sync().expect("an empty sync");
    assert_eq!(s.fsyncs(), fsyncs, "nothing to sync, no fsync");
    s.append(&entries(6, 6, 1)).expect("append");
    s.set_commit(4);
    // Both the entry and the hard state go with one fsync, and no directory
    // fsync: no file was created.
    s.sync().expect("sync");
    assert_eq!(s.fsyncs(), fsyncs + 1);
    drop(s);
    let s = open(&dir);
    assert_eq!(Storage::last_index(&s).unwrap(), 6);
    assert_eq!(s.hard_state().commit, 4);
}

#[test]
fn a_conflicting_suffix_is_replaced_and_stays_replaced() {
    let dir = TempDir::new("conflict");
    let mut s = five_entries(&dir);
    // A new leader of term 2 overwrites 4..=5 with its own 4.
    s.append(&[entry(4, 2, b"new four")]).expect("append");
    s.set_hard_state(&hard_state(2, 3, 3));
    s.sync().expect("sync");
    let mut expected = entries(1, 3, 1);
    expected.push(entry(4, 2, b"new four"));
    assert_eq!(all_entries(&s), expected);
    drop(s);
    let s = open(&dir);
    assert_eq!(all_entries(&s), expected);
    assert_eq!(Storage::last_index(&s).unwrap(), 4);
    assert_eq!(s.hard_state(), &hard_state(2, 3, 3));
}

#[test]
fn a_gap_or_an_index_before_the_log_is_refused_and_writes_nothing() {
    let dir = TempDir::new("gap");
    let mut s = five_entries(&dir);
    assert!(s.append(&entries(7, 8, 1)).is_err(), "a gap");
    assert!(
        s.append(&[entry(6, 1, b"a"), entry(8, 1, b"b")]).is_err(),
        "a gap inside"
    );
    s.compact(2, voters(&[1, 2, 3]), b"state at 2".to_vec())
        .expect("compact");
    assert!(s.append(&entries(2, 2, 2)).is_err(), "before the log");
    s.sync().expect("sync");
    drop(s);
    assert_eq!(all_entries(&open(&dir)), entries(3, 5, 1));
}

#[test]
fn entries_honour_max_size_but_return_at_least_one() {
    let dir = TempDir::new("max-size");
    let s = five_entries(&dir);
    let context = || GetEntriesContext::empty(false);
    assert_eq!(s.entries(2, 5, 0, context()).unwrap().len(), 1);
    let one = u64::from(protobuf::Message::compute_size(&entries(2, 2, 1)[0]));
    assert_eq!(s.entries(2, 5, one * 2, context()).unwrap().len(), 2);
    assert_eq!(s.entries(2, 5, None, context()).unwrap().len(), 3);
    assert!(s.entries(0, 2, None, context()).is_err(), "compacted");
    assert!(s.entries(2, 9, None, context()).is_err(), "past the end");
    assert!(s.entries(3, 3, None, context()).unwrap().is_empty());
}

#[test]
fn compaction_keeps_the_entries_after_it_and_one_snapshot() {
    let dir = TempDir::new("compact");
    let mut s = five_entries(&dir);
    s.compact(2, voters(&[1, 2, 3]), b"state at 2".to_vec())
        .expect("compact");
    s.append(&entries(6, 7, 1)).expect("append");
    s.set_commit(6);
    s.sync().expect("sync");
    s.compact(3, voters(&[1, 2, 3]), b"state at 3".to_vec())
        .expect("compact again");
    // At or below the snapshot: nothing; past the commit index: refused.
    s.compact(3, voters(&[1, 2, 3]), Vec::new()).expect("no-op");
    s.compact(1, voters(&[1, 2, 3]), Vec::new()).expect("no-op");
    assert!(s.compact(7, voters(&[1, 2, 3]), Vec::new()).is_err());
    let before = raft_view(&s);
    assert_eq!(before.2, 4, "first index");
    assert_eq!(before.4, entries(4, 7, 1));
    assert_eq!(s.term(3).unwrap(), 1, "the snapshot's term");
    assert!(s.term(2).is_err(), "compacted");
    drop(s);
    assert_eq!(
        dir.names(),
        [
            "lock".to_owned(),
            files::segment_name(3),
            files::snapshot_name(3)
        ]
    );
    let s = open(&dir);
    assert_eq!(raft_view(&s), before);
    let snapshot = s.snapshot(0, 2).expect("snapshot");
    assert_eq!(&snapshot.data[..], b"state at 3");
    assert_eq!(snapshot.get_metadata().index, 3);
    assert_eq!(snapshot.get_metadata().term, 1);
    assert_eq!(
        snapshot.get_metadata().get_conf_state(),
        &voters(&[1, 2, 3])
    );
    assert!(s.snapshot(4, 2).is_err(), "older than asked for");
}

#[test]
fn disk_use_stays_bounded_by_a_snapshot_and_the_entries_since() {
    let dir = TempDir::new("bounded");
    let mut s = open(&dir);
    s.bootstrap(&[1]).expect("bootstrap");
    let value = [7u8; 1000];
    for round in 0..50u64 {
        let from = round * 20 + 1;
        let batch: Vec<Entry> = (from..from + 20).map(|i| entry(i, 1, &value)).collect();
        s.append(&batch).expect("append");
        s.set_hard_state(&hard_state(1, 1, from + 19));
        s.sync().expect("sync");
        s.compact(from + 9, voters(&[1]), vec![1; 5000])
            .expect("compact");
    }
    let bytes: u64 = dir
        .names()
        .iter()
        .map(|n| fs::metadata(dir.file(n)).expect("metadata").len())
        .sum();
    // A 5 kB snapshot and 10 entries of 1 kB, plus headers.
    assert!(bytes < 20_000, "{bytes} bytes on disk");
    assert!(s.bytes_written() > 1_000_000);
}

#[test]
fn a_snapshot_from_the_leader_replaces_the_log_and_survives_a_reopen() {
    let dir = TempDir::new("install");
    let mut s = five_entries(&dir);
    let mut snapshot = Snapshot {
        data: b"the leader's state at 10".to_vec().into(),
        ..Snapshot::default()
    };
    snapshot.set_metadata(snapshot_meta(10, 3, &[1, 2, 3, 4]));
    s.apply_snapshot(snapshot.clone()).expect("apply");
    assert_eq!(Storage::first_index(&s).unwrap(), 11);
    assert_eq!(Storage::last_index(&s).unwrap(), 10);
    assert_eq!(s.hard_state(), &hard_state(3, 2, 10));
    s.append(&entries(11, 12, 3)).expect("append");
    s.sync().expect("sync");
    let before = raft_view(&s);
    drop(s);
    let s = open(&dir);
    assert_eq!(raft_view(&s), before);
    assert_eq!(s.latest_snapshot(), &snapshot);
    assert_eq!(s.initial_state().unwrap().conf_state, voters(&[1, 2, 3, 4]));
    assert_eq!(s.term(10).unwrap(), 3);
    let mut older = snapshot;
    older.mut_metadata().index = 10;
    let mut s = s;
    assert!(s.apply_snapshot(older).is_err(), "not newer");
}

#[test]
fn a_torn_tail_at_every_byte_of_the_last_record_recovers_the_one_before() {
    let (dir, path, _) = five_entries_closed("torn");
    let expected = raft_view(&open(&dir));
    // One more entry, the last record of the file.
    let mut s = open(&dir);
    s.append(&[entry(6, 1, b"the record that is torn")])
        .expect("append");
    s.sync().expect("sync");
    drop(s);
    let whole = fs::read(&path).expect("read");
    let last_len = RECORD_HEADER_LEN
        + protobuf::Message::write_to_bytes(&entry(6, 1, b"the record that is torn"))
            .expect("encode")
            .len();
    let start = whole.len() - last_len;
    for cut in start..whole.len() {
        fs::write(&path, &whole[..cut]).expect("write");
        let mut s = DiskStorage::open(dir.path())
            .unwrap_or_else(|e| panic!("cut at {cut} of {}: {e}", whole.len()));
        assert_eq!(raft_view(&s), expected, "cut at {cut}");
        assert_eq!(
            fs::metadata(&path).expect("metadata").len(),
            start as u64,
            "the torn tail is cut off the file"
        );
        // And the log goes on from there.
        s.append(&[entry(6, 2, b"after")]).expect("append");
        s.sync().expect("sync");
        drop(s);
        assert_eq!(Storage::last_index(&open(&dir)).unwrap(), 6);
    }
}

#[test]
fn a_bad_checksum_on_the_last_record_and_a_zeroed_tail_are_torn_tails() {
    let (dir, path, whole) = five_entries_closed("torn-checksum");
    let expected = raft_view(&open(&dir));

    let mut extra = Vec::new();
    format::encode_entry(&entry(6, 1, b"last"), &mut extra).expect("encode");
    let flipped = extra.len() - 1;
    extra[flipped] ^= 0x40;
    fs::write(&path, [&whole[..], &extra].concat()).expect("write");
    assert_eq!(raft_view(&open(&dir)), expected);

    fs::write(&path, [&whole[..], &[0; 4096]].concat()).expect("write");
    assert_eq!(raft_view(&open(&dir)), expected);
    assert_eq!(fs::metadata(&path).unwrap().len(), whole.len() as u64);
}

/// The offsets of the records of a segment file.
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = SEGMENT_HEADER_LEN;
    while at < bytes.len() {
        offsets.push(at);
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        at += RECORD_HEADER_LEN + usize::try_from(len).unwrap();
    }
    offsets
}

/// `five_entries`, closed: the directory, its segment and the segment's bytes.
fn five_entries_closed(name: &str) -> (TempDir, PathBuf, Vec<u8>) {
    let dir = TempDir::new(name);
    drop(five_entries(&dir));
    let path = segment_path(&dir, 0);
    let whole = fs::read(&path).expect("read");
    (dir, path, whole)
}

#[test]
fn a_flipped_byte_in_a_middle_record_stops_start_up_naming_file_and_offset() {
    let (dir, path, whole) = five_entries_closed("flipped");
    let offsets = record_offsets(&whole);
    assert!(offsets.len() >= 6, "{offsets:?}");
    let victim = offsets[3];
    // Every byte of the record's checksum, kind and payload.
    for at in victim + 4..offsets[4] {
        let mut bad = whole.clone();
        bad[at] ^= 0x01;
        fs::write(&path, &bad).expect("write");
        let e = DiskStorage::open(dir.path()).expect_err("corrupt");
        let message = e.to_string();
        assert!(e.is_corruption(), "{message}");
        assert_eq!(e.offset(), Some(victim as u64), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(&format!("at byte {victim}")), "{message}");
        assert!(message.contains("checksum"), "{message}");
    }
    // The file is left as it was found, for the operator.
    assert_eq!(fs::read(&path).unwrap().len(), whole.len());
}

#[test]
fn bad_headers_and_entries_that_do_not_follow_stop_start_up() {
    let (dir, path, whole) = five_entries_closed("bad-headers");
    let offsets = record_offsets(&whole);

    // A length above the maximum, in the middle.
    let mut bad = whole.clone();
    bad[offsets[2]..offsets[2] + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    fs::write(&path, &bad).unwrap();
    let e = DiskStorage::open(dir.path()).expect_err("long record");
    assert_eq!(e.offset(), Some(offsets[2] as u64), "{e}");
    assert!(e.to_string().contains("above the maximum"), "{e}");

    // A valid record whose entry leaves a gap.
    let mut gap = whole.clone();
    format::encode_entry(&entry(9, 1, b"gap"), &mut gap).unwrap();
    format::encode_entry(&entry(10, 1, b"more"), &mut gap).unwrap();
    fs::write(&path, &gap).unwrap();
    let e = DiskStorage::open(dir.path()).expect_err("gap");
    assert_eq!(e.offset(), Some(whole.len() as u64), "{e}");
    assert!(e.to_string().contains("does not follow"), "{e}");

    // The file header.
    let mut bad = whole.clone();
    bad[9] ^= 1;
    fs::write(&path, &bad).unwrap();
    let e = DiskStorage::open(dir.path()).expect_err("version");
    assert!(e.to_string().contains("version"), "{e}");
    fs::write(&path, &whole[..10]).unwrap();
    assert!(DiskStorage::open(dir.path()).is_err(), "short header");
}

#[test]
fn a_flipped_byte_in_the_snapshot_stops_start_up() {
    let dir = TempDir::new("snapshot-flip");
    let mut s = five_entries(&dir);
    s.compact(3, voters(&[1, 2, 3]), vec![42; 100])
        .expect("compact");
    drop(s);
    let path = dir.file(&files::snapshot_name(3));
    let whole = fs::read(&path).expect("read");
    for at in (0..whole.len()).step_by(7) {
        let mut bad = whole.clone();
        bad[at] ^= 0x80;
        fs::write(&path, &bad).unwrap();
        let e = DiskStorage::open(dir.path()).expect_err("corrupt snapshot");
        assert!(e.is_corruption(), "{e}");
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    }
    fs::write(&path, &whole[..whole.len() - 1]).unwrap();
    assert!(DiskStorage::open(dir.path()).is_err(), "short snapshot");
    fs::write(&path, &whole).unwrap();
    assert_eq!(&open(&dir).latest_snapshot().data[..], &[42; 100][..]);
}

#[test]
fn leftovers_of_an_interrupted_compaction_are_handled() {
    let (dir, _, _) = five_entries_closed("leftovers");
    let expected = raft_view(&open(&dir));
    // A temporary snapshot and segment that were never renamed.
    fs::write(
        dir.file(&format!("{}.tmp", files::snapshot_name(3))),
        b"half",
    )
    .unwrap();
    fs::write(
        dir.file(&format!("{}.tmp", files::segment_name(3))),
        b"half",
    )
    .unwrap();
    fs::write(dir.file("notes.txt"), b"not ours").unwrap();
    assert_eq!(raft_view(&open(&dir)), expected);
    assert_eq!(
        dir.names(),
        [
            "lock".to_owned(),
            files::segment_name(0),
            "notes.txt".to_owned()
        ]
    );

    // A snapshot renamed, its segment not yet written: the compaction is
    // finished at open, the entries after the snapshot kept.
    let bytes = format::encode_snapshot(&snapshot_meta(3, 1, &[1, 2, 3]), b"state at 3").unwrap();
    fs::write(dir.file(&files::snapshot_name(3)), &bytes).unwrap();
    let s = open(&dir);
    assert_eq!(all_entries(&s), entries(4, 5, 1));
    assert_eq!(s.hard_state(), &hard_state(1, 2, 3));
    drop(s);
    assert_eq!(
        dir.names(),
        [
            "lock".to_owned(),
            files::segment_name(3),
            "notes.txt".to_owned(),
            files::snapshot_name(3)
        ]
    );

    // An older snapshot and segment still there: removed.
    fs::write(dir.file(&files::snapshot_name(1)), b"older").unwrap();
    fs::write(segment_path(&dir, 1), b"older").unwrap();
    let s = open(&dir);
    assert_eq!(all_entries(&s), entries(4, 5, 1));
    drop(s);
    assert!(!dir.names().contains(&files::snapshot_name(1)));
    assert!(!dir.names().contains(&files::segment_name(1)));
}

#[test]
fn an_interrupted_install_drops_the_suffix_the_snapshot_replaced() {
    let dir = TempDir::new("interrupted-install");
    drop(five_entries(&dir));
    // The leader's snapshot at 4 of term 2: our 4 (term 1) is another
    // leader's suffix.
    let bytes = format::encode_snapshot(&snapshot_meta(4, 2, &[1, 2, 3]), b"leader state").unwrap();
    fs::write(dir.file(&files::snapshot_name(4)), &bytes).unwrap();
    let s = open(&dir);
    assert!(all_entries(&s).is_empty());
    assert_eq!(s.hard_state(), &hard_state(2, 2, 4));
    assert_eq!(Storage::last_index(&s).unwrap(), 4);
}

#[test]
fn inconsistent_directories_stop_start_up() {
    let dir = TempDir::new("inconsistent");
    let mut s = five_entries(&dir);
    s.compact(3, voters(&[1, 2, 3]), b"x".to_vec()).unwrap();
    drop(s);
    // The snapshot the segment continues is gone.
    fs::remove_file(dir.file(&files::snapshot_name(3))).unwrap();
    let e = DiskStorage::open(dir.path()).expect_err("no snapshot");
    assert!(e.is_corruption(), "{e}");
    // A snapshot without its segment.
    let dir = TempDir::new("inconsistent-2");
    let mut s = five_entries(&dir);
    s.compact(3, voters(&[1, 2, 3]), b"x".to_vec()).unwrap();
    drop(s);
    fs::remove_file(segment_path(&dir, 3)).unwrap();
    let e = DiskStorage::open(dir.path()).expect_err("no segment");
    assert!(e.to_string().contains("no log segment"), "{e}");
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = TempDir::new("locked");
    let s = open(&dir);
    let e = DiskStorage::open(dir.path()).expect_err("locked");
    assert!(e.to_string().contains("lock"), "{e}");
    drop(s);
    open(&dir);
}

#[test]
fn an_entry_above_the_record_maximum_is_refused_before_it_is_written() {
    let dir = TempDir::new("too-long");
    let mut s = five_entries(&dir);
    let huge = vec![0u8; usize::try_from(format::MAX_RECORD_BYTES).unwrap() + 1];
    assert!(s.append(&[entry(6, 1, &huge)]).is_err());
    s.append(&entries(6, 6, 1)).expect("the log goes on");
    s.sync().unwrap();
    drop(s);
    assert_eq!(all_entries(&open(&dir)), entries(1, 6, 1));
}

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

fn config() -> Config {
    Config {
        id: 1,
        election_tick: 10,
        heartbeat_tick: 1,
        ..Config::default()
    }
}

/// Handles every Ready as the reactor will: persist, sync, advance, apply.
/// Returns the entries committed (to apply), in order.
fn drive(node: &mut RawNode<DiskStorage>) -> Vec<Entry> {
    let mut committed = Vec::new();
    while node.has_ready() {
        let mut ready = node.ready();
        let store = node.mut_store();
        if !ready.snapshot().is_empty() {
            store.apply_snapshot(ready.snapshot().clone()).unwrap();
        }
        committed.extend(ready.take_committed_entries());
        store.append(ready.entries()).unwrap();
        if let Some(hs) = ready.hs() {
            store.set_hard_state(hs);
        }
        store.sync().unwrap();
        let mut light = node.advance(ready);
        if let Some(commit) = light.commit_index() {
            node.mut_store().set_commit(commit);
            node.mut_store().sync().unwrap();
        }
        committed.extend(light.take_committed_entries());
        node.advance_apply();
    }
    committed
}

fn proposals(entries: &[Entry]) -> Vec<Vec<u8>> {
    entries
        .iter()
        .filter(|e| !e.data.is_empty())
        .map(|e| e.data.to_vec())
        .collect()
}

#[test]
fn a_single_node_raft_commits_on_disk_storage_and_recovers_its_log() {
    let dir = TempDir::new("raft");
    let mut storage = open(&dir);
    assert!(storage.is_fresh());
    storage.bootstrap(&[1]).unwrap();
    let mut node = RawNode::new(&config(), storage, &logger()).expect("raw node");
    node.campaign().expect("campaign");
    let mut committed = drive(&mut node);
    assert_eq!(node.raft.state, raft::StateRole::Leader);
    for i in 0..5 {
        node.propose(vec![], format!("proposal {i}").into_bytes())
            .expect("propose");
        committed.extend(drive(&mut node));
    }
    let wanted: Vec<Vec<u8>> = (0..5)
        .map(|i| format!("proposal {i}").into_bytes())
        .collect();
    assert_eq!(proposals(&committed), wanted);
    let commit = node.raft.raft_log.committed;
    assert_eq!(commit, committed.last().unwrap().index);
    drop(node);

    // A new node on the reopened storage gives the same committed entries
    // back (applied 0: it replays them all), then goes on.
    let storage = open(&dir);
    assert_eq!(storage.hard_state().commit, commit);
    let mut node = RawNode::new(&config(), storage, &logger()).expect("raw node");
    let replayed = drive(&mut node);
    assert_eq!(replayed, committed);
    node.campaign().expect("campaign");
    drive(&mut node);
    node.propose(vec![], b"after the restart".to_vec()).unwrap();
    let more = drive(&mut node);
    assert_eq!(proposals(&more), [b"after the restart".to_vec()]);

    // Compacted at the applied index and reopened: the log after it only.
    let applied = more.last().unwrap().index;
    node.mut_store()
        .compact(applied, voters(&[1]), b"store".to_vec())
        .unwrap();
    drop(node);
    let storage = open(&dir);
    assert_eq!(Storage::first_index(&storage).unwrap(), applied + 1);
    let config = Config {
        applied,
        ..config()
    };
    let mut node = RawNode::new(&config, storage, &logger()).expect("raw node");
    assert!(drive(&mut node).is_empty());
    node.campaign().unwrap();
    drive(&mut node);
    node.propose(vec![], b"after compaction".to_vec()).unwrap();
    assert_eq!(proposals(&drive(&mut node)), [b"after compaction".to_vec()]);
}

/// Not a test: the cost of `append` + `sync` on this machine's disk, with
/// 1, 32 and 256 small entries per sync. Run with
/// `cargo test --release --lib sync_cost -- --ignored --nocapture`; set
/// `DLM_STORAGE_BENCH_DIR` to measure another disk than the temporary
/// directory's.
#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn sync_cost() {
    let base = std::env::var_os("DLM_STORAGE_BENCH_DIR").map(PathBuf::from);
    let dir = TempDir::new("bench");
    let dir = match base {
        Some(base) => TempDir(base.join("jrdlm-storage-bench")),
        None => dir,
    };
    let mut s = DiskStorage::open(dir.path()).expect("open");
    s.bootstrap(&[1]).unwrap();
    // The floor: 100 bytes appended and fdatasync'ed on a plain file.
    let mut raw = fs::File::create(dir.file("raw")).unwrap();
    let started = Instant::now();
    for _ in 0..200 {
        std::io::Write::write_all(&mut raw, &[b'r'; 100]).unwrap();
        raw.sync_data().unwrap();
    }
    println!(
        "raw write + fdatasync: {:.3} ms mean",
        started.elapsed().as_secs_f64() * 1000.0 / 200.0
    );
    let value = [b'v'; 64];
    let mut next = 1;
    for per_sync in [1u64, 32, 256] {
        let budget = Duration::from_secs(2);
        let (mut syncs, mut fsync_time) = (0u64, Duration::ZERO);
        let fsyncs = s.fsyncs();
        let started = Instant::now();
        while started.elapsed() < budget && syncs < 2000 {
            let batch: Vec<Entry> = (next..next + per_sync)
                .map(|i| entry(i, 1, &value))
                .collect();
            next += per_sync;
            s.append(&batch).unwrap();
            s.set_hard_state(&hard_state(1, 1, next - 1));
            let before = Instant::now();
            s.sync().unwrap();
            fsync_time += before.elapsed();
            syncs += 1;
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "{per_sync:>3} entries/sync: {syncs} syncs, {:.0} syncs/s, {:.0} records/s, \
             sync {:.3} ms mean, {} fsyncs",
            syncs as f64 / elapsed,
            (syncs * per_sync) as f64 / elapsed,
            fsync_time.as_secs_f64() * 1000.0 / syncs as f64,
            s.fsyncs() - fsyncs,
        );
        s.compact(next - 1, voters(&[1]), vec![0; 1000]).unwrap();
    }
}

/// Not a test: writes the `wal` fuzz target's seeds, real files of a data
/// directory, into `fuzz/corpus/wal/`. Run with `cargo test --lib
/// write_wal_fuzz_seeds -- --ignored` after a format change.
#[test]
#[ignore = "writes fuzz/corpus/wal/seed-*"]
fn write_wal_fuzz_seeds() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/wal");
    fs::create_dir_all(&out).expect("corpus directory");
    let seed = |name: &str, bytes: &[u8]| fs::write(out.join(name), bytes).expect("write seed");

    let dir = TempDir::new("seeds");
    let mut s = open(&dir);
    s.bootstrap(&[1, 2, 3]).unwrap();
    seed(
        "seed-bootstrapped",
        &fs::read(segment_path(&dir, 0)).unwrap(),
    );
    drop(s);
    let (dir, path, whole) = five_entries_closed("seeds-five");
    seed("seed-five-entries", &whole);
    let mut torn = whole.clone();
    format::encode_entry(&entry(6, 1, b"torn"), &mut torn).unwrap();
    seed("seed-torn-tail", &torn[..torn.len() - 3]);
    let mut s = open(&dir);
    s.append(&[entry(4, 2, b"new four")]).unwrap();
    s.set_hard_state(&hard_state(2, 3, 3));
    s.sync().unwrap();
    seed("seed-conflicting-suffix", &fs::read(&path).unwrap());
    s.compact(3, voters(&[1, 2, 3]), b"the store at 3".to_vec())
        .unwrap();
    s.append(&entries(5, 6, 2)).unwrap();
    s.set_commit(5);
    s.sync().unwrap();
    seed("seed-compacted", &fs::read(segment_path(&dir, 3)).unwrap());
    seed(
        "seed-snapshot",
        &fs::read(dir.file(&files::snapshot_name(3))).unwrap(),
    );
    let mut snapshot = Snapshot {
        data: vec![0xA5; 300].into(),
        ..Snapshot::default()
    };
    snapshot.set_metadata(snapshot_meta(10, 3, &[1, 2, 3, 4]));
    s.apply_snapshot(snapshot).unwrap();
    seed(
        "seed-installed-snapshot",
        &fs::read(dir.file(&files::snapshot_name(10))).unwrap(),
    );
    seed(
        "seed-installed-segment",
        &fs::read(segment_path(&dir, 10)).unwrap(),
    );
}

#[test]
fn log_bytes_count_the_entries_kept_through_appends_conflicts_compaction_and_reopen() {
    let dir = TempDir::new("log-bytes");
    let mut s = five_entries(&dir);
    let bytes = |s: &DiskStorage| data_bytes(&all_entries(s));
    assert!(s.log_bytes() > 0);
    assert_eq!(s.log_bytes(), bytes(&s));
    s.append(&[entry(4, 2, b"a much longer fourth entry than before")])
        .expect("append");
    assert_eq!(
        s.log_bytes(),
        bytes(&s),
        "the replaced suffix is not counted"
    );
    s.set_hard_state(&hard_state(2, 3, 3));
    s.sync().expect("sync");
    s.compact(3, voters(&[1]), b"store".to_vec())
        .expect("compact");
    assert_eq!(s.log_bytes(), bytes(&s), "what compaction dropped is not");
    assert_eq!(s.log_bytes(), 38);
    drop(s);
    let s = open(&dir);
    assert_eq!(s.log_bytes(), 38, "reopened");
}

#[test]
fn write_for_sync_hands_over_the_file_only_when_something_must_be_durable() {
    let dir = TempDir::new("write-for-sync");
    let mut s = five_entries(&dir);
    assert!(
        s.write_for_sync(true).expect("write").is_none(),
        "nothing written"
    );
    s.set_commit(4);
    assert!(
        s.write_for_sync(false).expect("write").is_none(),
        "a commit index alone waits for a later fsync"
    );
    s.append(&entries(6, 6, 1)).expect("append");
    let file = s
        .write_for_sync(true)
        .expect("write")
        .expect("a file to fsync");
    file.sync_data().expect("fsync");
    drop(s);
    let s = open(&dir);
    assert_eq!(
        Storage::last_index(&s).unwrap(),
        6,
        "the entry is in the file"
    );
    assert_eq!(s.hard_state().commit, 4, "and the commit index before it");
}
