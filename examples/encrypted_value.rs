//! A value encrypted with AES-256-GCM on the client: the server stores and
//! returns only ciphertext.
//!
//! Start a server (`cargo run --release --bin jackrabbit-dlm`), then
//!
//! ```text
//! cargo run --example encrypted_value -- [HOST] [PORT]
//! ```
//!
//! The codec seals each value with a fresh random nonce and the item's name
//! as associated data (so a ciphertext copied to another item fails to
//! open), and stores `base64(nonce || ciphertext || tag)`. The key here is
//! random per run; a real deployment loads it from a secret store.

use std::error::Error;
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use jackrabbit_dlm::client::{Base64, DEFAULT_PORT, Locker, ValueCodec};

const NONCE_LEN: usize = 12;

/// Encrypts values for one data item.
struct Sealed {
    cipher: Aes256Gcm,
    /// The item's name, bound into every ciphertext.
    name: String,
}

impl ValueCodec for Sealed {
    type Error = String;

    fn encode(&self, value: &[u8]) -> Result<String, String> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| format!("no nonce: {e}"))?;
        let payload = Payload {
            msg: value,
            aad: self.name.as_bytes(),
        };
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .map_err(|_| "encryption failed".to_owned())?;
        Base64
            .encode(&[&nonce[..], &sealed].concat())
            .map_err(|e| e.to_string())
    }

    fn decode(&self, text: &str) -> Result<Vec<u8>, String> {
        let bytes = Base64.decode(text).map_err(|e| e.to_string())?;
        if bytes.len() < NONCE_LEN {
            return Err("stored value is too short to be sealed".to_owned());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let payload = Payload {
            msg: sealed,
            aad: self.name.as_bytes(),
        };
        self.cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| {
                "the value does not open with this key (or was moved or altered)".to_owned()
            })
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let host = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    let port = args.get(1).map_or(Ok(DEFAULT_PORT), |p| p.parse())?;
    let (name, id) = ("db-password", "encrypted-example");

    let mut key = [0u8; 32];
    getrandom::fill(&mut key)?;
    let codec = Sealed {
        cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)),
        name: name.to_owned(),
    };

    let secret = "correct horse battery staple";
    let mut sealed = Locker::builder(name)
        .host(host.as_str())
        .port(port)
        .id(id)
        .codec(codec)
        .build()?;
    sealed.put(secret, Duration::from_secs(60))?;

    // The same owner without the key sees what the server holds.
    let mut raw = Locker::builder(name)
        .host(host.as_str())
        .port(port)
        .id(id)
        .build()?;
    let stored = String::from_utf8(raw.get()?.ok_or("the value vanished")?)?;
    println!("the server holds: {stored}");
    assert!(
        !stored.contains(secret),
        "the server must never see the plaintext"
    );

    let opened = sealed.get()?.ok_or("the value vanished")?;
    println!("the client reads: {}", String::from_utf8(opened)?);
    sealed.erase()?;
    Ok(())
}
