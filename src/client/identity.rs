//! Identity files (PROTOCOL.md, Authentication): the secret a `Name`
//! authenticates with, kept as `DIR/<Name>.cfg`, a JSON object with an
//! `Identity` string.
//!
//! [`write_identity_file`] makes a new one as upstream's `DLMIdentity` does
//! (what `dlm identity new` runs); [`read_identity_file`] is what a client's
//! [`identity_file`](super::LockerBuilder::identity_file) reads.
//!
//! ```no_run
//! use jackrabbit_dlm::client::identity::{read_identity_file, write_identity_file};
//!
//! let path = write_identity_file("/home/JackrabbitDLM/Config".as_ref(), "billing")?;
//! let secret = read_identity_file(&path)?;
//! assert!(secret.len() >= 1364);
//! # Ok::<(), jackrabbit_dlm::client::Error>(())
//! ```

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use miniserde::json::Value;

use super::error::Error;
use super::setup::fill_random;

/// The fewest characters of an Identity the server accepts.
pub const MIN_IDENTITY_LEN: usize = 1023;

/// The longest `Name`, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// Checks `name` against PROTOCOL.md's rule for a `Name`: 1 to 255 bytes
/// of `A-Z a-z 0-9 . _ -`, not starting with `.` (so it can never name a
/// file outside the identity directory). The error says what is wrong.
///
/// ```
/// use jackrabbit_dlm::client::identity::check_name;
///
/// assert!(check_name("billing-2.prod_eu").is_ok());
/// assert!(check_name("../secrets").is_err());
/// assert!(check_name(".hidden").is_err());
/// ```
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "a Name is 1 to {MAX_NAME_LEN} bytes, not {}",
            name.len()
        ));
    }
    if name.starts_with('.') {
        return Err(format!("the Name {name:?} starts with '.'"));
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "the Name {name:?} holds {bad:?}: only A-Z a-z 0-9 . _ - are allowed"
        ));
    }
    Ok(())
}

/// A new random Identity as upstream's `DLMIdentity` makes one: 1023 to
/// 2046 random bytes from the operating system, written in URL-safe base64
/// without padding, so 1364 to 2728 characters.
pub fn new_identity() -> Result<String, Error> {
    let mut length = [0u8; 2];
    fill_random(&mut length)?;
    let bytes = 1023 + usize::from(u16::from_le_bytes(length)) % 1024;
    let mut secret = vec![0u8; bytes];
    fill_random(&mut secret)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret))
}

/// Writes a new identity file for `name` in `dir` (created if missing) and
/// returns its path, `dir/<name>.cfg`. The file is readable by its owner
/// alone (mode 0600) and never replaces an existing one.
pub fn write_identity_file(dir: &Path, name: &str) -> Result<PathBuf, Error> {
    check_name(name).map_err(Error::config)?;
    let path = dir.join(format!("{name}.cfg"));
    let io = |during, e| Error::io(path.display().to_string(), during, e);
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(dir.display().to_string(), "create the directory", e))?;
    let identity = new_identity()?;
    let mut text = String::with_capacity(identity.len() + 16);
    text.push_str("{\"Identity\":\"");
    text.push_str(&identity);
    text.push_str("\"}\n");
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::config(format!(
                    "{} exists already; remove it first to replace the identity",
                    path.display()
                ))
            } else {
                io("create", e)
            }
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io("write", e))?;
    Ok(path)
}

/// The `Identity` of the identity file at `path`: a JSON object whose
/// `Identity` is a string of at least [`MIN_IDENTITY_LEN`] characters
/// (other keys, such as `MaxSize`, are the server's business).
pub fn read_identity_file(path: &Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(path.display().to_string(), "read", e))?;
    let bad =
        |why: &str| Error::config(format!("{} is not an identity file: {why}", path.display()));
    let Ok(Value::Object(mut fields)) = miniserde::json::from_str::<Value>(&text) else {
        return Err(bad("not a JSON object"));
    };
    match fields.remove("Identity") {
        Some(Value::String(identity)) if identity.chars().count() >= MIN_IDENTITY_LEN => {
            Ok(identity)
        }
        Some(Value::String(_)) => Err(bad(&format!(
            "its Identity is shorter than {MIN_IDENTITY_LEN} characters"
        ))),
        _ => Err(bad("no Identity string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn names_follow_the_rule() {
        for good in ["a", "billing", "A-Z_0.9", &"n".repeat(255)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".x",
            "a/b",
            "a\\b",
            "é",
            "a b",
            &"n".repeat(256),
            "..",
            "a\0",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn new_identities_are_url_safe_and_of_upstreams_lengths() {
        for _ in 0..50 {
            let identity = new_identity().unwrap();
            assert!(
                (1364..=2728).contains(&identity.len()),
                "{}",
                identity.len()
            );
            assert!(
                identity
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
        }
        assert_ne!(new_identity().unwrap(), new_identity().unwrap());
    }

    #[test]
    fn files_are_private_read_back_and_never_replaced() {
        let dir = std::env::temp_dir().join(format!("jdlm-identity-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = write_identity_file(&dir.join("Config"), "svc").unwrap();
        assert_eq!(path, dir.join("Config/svc.cfg"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let first = read_identity_file(&path).unwrap();
        let err = write_identity_file(&dir.join("Config"), "svc").unwrap_err();
        assert!(err.to_string().contains("exists already"), "{err}");
        assert_eq!(read_identity_file(&path).unwrap(), first, "unchanged");
        assert!(write_identity_file(&dir, "../escape").is_err());
        std::fs::write(dir.join("short.cfg"), r#"{"Identity":"abc"}"#).unwrap();
        assert!(read_identity_file(&dir.join("short.cfg")).is_err());
        std::fs::write(dir.join("junk.cfg"), "Identity=abc").unwrap();
        assert!(read_identity_file(&dir.join("junk.cfg")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
