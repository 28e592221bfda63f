//! Why the durable storage cannot open or write: always with the file, and
//! for corruption the byte offset and what was wrong there.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::format::{DecodeError, EncodeError};

/// A failure of [`DiskStorage`](super::DiskStorage): its message names the
/// file (and for corruption the offset) so an operator can act on it.
#[derive(Debug)]
pub struct StorageError {
    path: PathBuf,
    kind: ErrorKind,
}

#[derive(Debug)]
enum ErrorKind {
    Io {
        doing: &'static str,
        source: io::Error,
    },
    Corrupt(DecodeError),
    Inconsistent(String),
    Refused(String),
    Encode(EncodeError),
    Failed,
}

impl StorageError {
    pub(super) fn io(path: &Path, doing: &'static str, source: io::Error) -> StorageError {
        StorageError {
            path: path.to_owned(),
            kind: ErrorKind::Io { doing, source },
        }
    }

    pub(super) fn corrupt(path: &Path, error: DecodeError) -> StorageError {
        StorageError {
            path: path.to_owned(),
            kind: ErrorKind::Corrupt(error),
        }
    }

    /// The files together make no sense (a log that starts after a snapshot
    /// that is not there, say): corruption of the directory, not of a file.
    pub(super) fn inconsistent(path: &Path, what: String) -> StorageError {
        StorageError {
            path: path.to_owned(),
            kind: ErrorKind::Inconsistent(what),
        }
    }

    /// A call that would break the log (a gap, compacting what is not
    /// committed): nothing was written.
    pub(super) fn refused(path: &Path, what: String) -> StorageError {
        StorageError {
            path: path.to_owned(),
            kind: ErrorKind::Refused(what),
        }
    }

    pub(super) fn encode(path: &Path, error: EncodeError) -> StorageError {
        StorageError {
            path: path.to_owned(),
            kind: ErrorKind::Encode(error),
        }
    }

    /// An earlier write or fsync failed: what reached the disk is unknown,
    /// so nothing more is written until the process starts again.
    pub(super) fn failed(path: &Path) -> StorageError {
        StorageError {
            path: path.to_owned(),
            kind: ErrorKind::Failed,
        }
    }

    /// The file or directory concerned.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The byte offset of the corruption, when the error is one.
    pub fn offset(&self) -> Option<u64> {
        match &self.kind {
            ErrorKind::Corrupt(e) => Some(e.offset()),
            _ => None,
        }
    }

    /// Whether the files on disk are damaged (as opposed to an I/O failure
    /// or a refused call).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Corrupt(_) | ErrorKind::Inconsistent(_)
        )
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.kind {
            ErrorKind::Io { doing, source } => write!(f, "{path}: cannot {doing}: {source}"),
            ErrorKind::Corrupt(e) => write!(f, "{path}: corrupt {e}"),
            ErrorKind::Inconsistent(what) => write!(f, "{path}: inconsistent: {what}"),
            ErrorKind::Refused(what) => write!(f, "{path}: refused: {what}"),
            ErrorKind::Encode(e) => write!(f, "{path}: {e}"),
            ErrorKind::Failed => write!(
                f,
                "{path}: an earlier write failed, so nothing more is written until a restart"
            ),
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io { source, .. } => Some(source),
            ErrorKind::Corrupt(e) => Some(e),
            _ => None,
        }
    }
}
