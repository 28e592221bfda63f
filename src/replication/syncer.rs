//! The one thread besides the reactor: it fsyncs the log, so the reactor
//! serves connections while the disk works.
//!
//! The reactor writes a `Ready`'s records to the log file itself (a copy
//! into the page cache) and hands the file to [`Syncer::submit`] with the
//! `Ready`'s number; this thread makes it durable (`fdatasync`) and wakes
//! the reactor through its `mio::Waker`, which then learns the numbers
//! made durable from [`Syncer::durable`] and tells raft
//! (`RawNode::on_persist_ready`). Requests are served in order, so a number
//! reported durable means every number before it is durable too. The
//! thread holds no lock the reactor takes and never touches the store.

use std::fs::File;
use std::io;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;

/// Hands files to the fsync thread and collects what it made durable.
#[derive(Debug)]
pub struct Syncer {
    requests: Option<Sender<(u64, File)>>,
    done: Receiver<(u64, io::Result<()>)>,
    thread: Option<JoinHandle<()>>,
    /// The highest number submitted, and the highest made durable.
    submitted: u64,
    durable: u64,
    fsyncs: u64,
}

impl Syncer {
    /// Starts the thread; `wake` is called after each fsync. The files of
    /// the requests that wait together are one file (the caller waits for
    /// the thread before it moves to another segment), so one fsync of the
    /// last covers them all.
    pub fn start(wake: Arc<dyn Fn() + Send + Sync>) -> io::Result<Syncer> {
        let (requests, inbox) = mpsc::channel::<(u64, File)>();
        let (outbox, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("fsync".into())
            .spawn(move || {
                while let Ok(mut last) = inbox.recv() {
                    while let Ok(next) = inbox.try_recv() {
                        last = next;
                    }
                    let result = last.1.sync_data();
                    if outbox.send((last.0, result)).is_err() {
                        return;
                    }
                    wake();
                }
            })?;
        Ok(Syncer {
            requests: Some(requests),
            done,
            thread: Some(thread),
            submitted: 0,
            durable: 0,
            fsyncs: 0,
        })
    }

    /// Asks for `file` (written up to `number`, numbers growing) to be
    /// made durable.
    pub fn submit(&mut self, number: u64, file: File) -> io::Result<()> {
        let sent = self
            .requests
            .as_ref()
            .is_some_and(|r| r.send((number, file)).is_ok());
        if !sent {
            return Err(stopped());
        }
        self.submitted = self.submitted.max(number);
        Ok(())
    }

    /// Whether an fsync was asked for and not reported yet.
    pub fn is_busy(&self) -> bool {
        self.submitted > self.durable
    }

    /// The highest number made durable since the last call, if any; an
    /// fsync that failed is an error (what is on disk is unknown: the
    /// caller stops).
    pub fn durable(&mut self) -> io::Result<Option<u64>> {
        let mut highest = None;
        while self.is_busy() {
            match self.done.try_recv() {
                Ok(report) => highest = Some(self.take(report)?),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Err(stopped()),
            }
        }
        Ok(highest)
    }

    /// Waits until everything submitted is durable; the highest number
    /// made durable meanwhile, if any.
    pub fn wait(&mut self) -> io::Result<Option<u64>> {
        let mut highest = None;
        while self.is_busy() {
            let report = self.done.recv().map_err(|_| stopped())?;
            highest = Some(self.take(report)?);
        }
        Ok(highest)
    }

    fn take(&mut self, (number, result): (u64, io::Result<()>)) -> io::Result<u64> {
        result.map_err(|e| io::Error::new(e.kind(), format!("cannot fsync the log: {e}")))?;
        self.fsyncs += 1;
        self.durable = self.durable.max(number);
        Ok(number)
    }

    /// Fsyncs this thread made.
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs
    }
}

fn stopped() -> io::Error {
    io::Error::other("the fsync thread has stopped")
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn temp_file(name: &str) -> (std::path::PathBuf, File) {
        let path = std::env::temp_dir().join(format!("syncer-{}-{name}", std::process::id()));
        let file = File::create(&path).expect("create");
        (path, file)
    }

    #[test]
    fn every_submitted_number_is_reported_durable_and_the_reactor_woken() {
        let wakes = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&wakes);
        let mut syncer = Syncer::start(Arc::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        }))
        .expect("start");
        let (path, mut file) = temp_file("numbers");
        assert!(!syncer.is_busy());
        assert_eq!(syncer.durable().expect("durable"), None, "nothing asked");
        for number in 1..=5 {
            file.write_all(b"record").expect("write");
            syncer
                .submit(number, file.try_clone().expect("clone"))
                .expect("submit");
        }
        assert!(syncer.is_busy());
        assert_eq!(syncer.wait().expect("wait"), Some(5));
        assert!(!syncer.is_busy());
        let fsyncs = syncer.fsyncs();
        assert!((1..=5).contains(&fsyncs), "{fsyncs} fsyncs for 5 numbers");
        // The thread wakes the reactor just after it reports.
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while wakes.load(Ordering::SeqCst) < usize::try_from(fsyncs).unwrap() {
            assert!(
                std::time::Instant::now() < give_up,
                "no wake after an fsync"
            );
            std::thread::yield_now();
        }
        assert_eq!(
            wakes.load(Ordering::SeqCst),
            usize::try_from(fsyncs).unwrap()
        );
        assert_eq!(syncer.wait().expect("wait"), None, "nothing more out");
        drop(syncer);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_failed_fsync_is_an_error() {
        let mut syncer = Syncer::start(Arc::new(|| {})).expect("start");
        // fdatasync refuses a pipe (EINVAL).
        let (reader, _writer) = std::io::pipe().expect("pipe");
        let fd: std::os::fd::OwnedFd = reader.into();
        syncer.submit(1, File::from(fd)).expect("submit");
        assert!(syncer.wait().is_err());
    }
}
