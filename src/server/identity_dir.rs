//! The identity directory (`--identity-dir`): read at start-up, again when
//! it changes (the reactor looks once a second) and at once on SIGHUP;
//! never on a request's path.
//!
//! A file is `DIR/<Name>.cfg` with a valid Name; a file that is not a valid
//! identity does not exist. Bounds: at most `--max-identities` files, each
//! at most [`MAX_FILE`] bytes; nothing outside the directory is opened (a
//! Name cannot hold a path separator, and symbolic links are not followed
//! out of it: only regular files are read).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::session::auth::{Identities, Identity, valid_name};

/// The largest identity file read (upstream's are under 3 KiB).
pub const MAX_FILE: u64 = 64 * 1024;

/// What the directory looked like when it was last read: each file's name,
/// size and modification time, and the directory's own.
type Fingerprint = Vec<(String, u64, Option<SystemTime>)>;

/// The directory and what it held when it was last read.
#[derive(Debug)]
pub struct IdentityDir {
    dir: PathBuf,
    max_files: usize,
    seen: Fingerprint,
}

impl IdentityDir {
    /// Reads `dir` for the first time; an unreadable directory is an error
    /// (the server does not start).
    pub fn open(dir: &Path, max_files: usize) -> std::io::Result<(IdentityDir, Identities)> {
        fs::read_dir(dir).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot read {}: {e}", dir.display()))
        })?;
        let mut watched = IdentityDir {
            dir: dir.to_path_buf(),
            max_files,
            seen: Vec::new(),
        };
        let identities = watched.read();
        Ok((watched, identities))
    }

    /// The identities again if the directory changed since it was read
    /// (or always, with `force`, for SIGHUP).
    pub fn reread(&mut self, force: bool) -> Option<Identities> {
        if !force && self.fingerprint() == self.seen {
            return None;
        }
        Some(self.read())
    }

    /// The `.cfg` files with a valid Name, sorted, at most `max_files`.
    fn candidates(&self) -> Vec<(String, PathBuf)> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut found: Vec<(String, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let file = entry.file_name().into_string().ok()?;
                let name = file.strip_suffix(".cfg")?;
                valid_name(name).then(|| (name.to_owned(), entry.path()))
            })
            .collect();
        found.sort();
        if found.len() > self.max_files {
            log::warn!(
                "{}: {} identity files, reading the first {}",
                self.dir.display(),
                found.len(),
                self.max_files
            );
            found.truncate(self.max_files);
        }
        found
    }

    fn fingerprint(&self) -> Fingerprint {
        let mut print: Fingerprint = self
            .candidates()
            .into_iter()
            .map(|(name, path)| {
                let meta = fs::metadata(&path).ok();
                let len = meta.as_ref().map_or(0, fs::Metadata::len);
                let modified = meta.and_then(|m| m.modified().ok());
                (name, len, modified)
            })
            .collect();
        let dir_modified = fs::metadata(&self.dir).and_then(|m| m.modified()).ok();
        print.push((String::new(), 0, dir_modified));
        print
    }

    fn read(&mut self) -> Identities {
        self.seen = self.fingerprint();
        let mut identities = Identities::new();
        for (name, path) in self.candidates() {
            // Only regular files, and no larger than a real identity file.
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.file_type().is_file() || meta.len() > MAX_FILE {
                log::warn!("{}: not a regular identity file, ignored", path.display());
                continue;
            }
            match fs::read(&path)
                .ok()
                .and_then(|bytes| Identity::parse(&bytes))
            {
                Some(identity) => identities.insert(&name, identity),
                None => log::warn!("{}: not an identity file, ignored", path.display()),
            }
        }
        log::info!("{}: {} identities", self.dir.display(), identities.len());
        identities
    }
}
