//! Value codecs: how a [`Locker`](super::Locker) turns the bytes a caller
//! stores into the string the server keeps, and back.
//!
//! The server treats `DataStore` as an opaque JSON string and never looks
//! inside, so whatever a codec produces is exactly what other clients (and
//! anyone reading the server's memory) see. A codec that encrypts therefore
//! keeps the server blind; see `examples/encrypted_value.rs`.
//!
//! Built in: [`Identity`] (UTF-8 text as it is, what the Python client does
//! without an encoder), [`Base64`] and [`Table`] (the 78-character table
//! encoding of the protocol). A pair of closures becomes a codec with
//! [`FnCodec`].

use base64::Engine as _;

use super::error::BoxError;
use crate::protocol::codec;

/// Turns stored bytes into the string sent to the server, and back.
///
/// `decode(encode(v))` must give `v` back for every value the codec accepts.
pub trait ValueCodec: Send {
    /// Why a value could not be encoded or decoded. Anything that converts
    /// into a boxed error will do, including `String`.
    type Error: Into<BoxError>;

    /// The string the server will store for `value`.
    fn encode(&self, value: &[u8]) -> Result<String, Self::Error>;

    /// The bytes that a stored string stands for.
    fn decode(&self, text: &str) -> Result<Vec<u8>, Self::Error>;
}

/// Values are UTF-8 text, stored as they are. Encoding bytes that are not
/// UTF-8 fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity;

impl ValueCodec for Identity {
    type Error = std::str::Utf8Error;

    fn encode(&self, value: &[u8]) -> Result<String, Self::Error> {
        std::str::from_utf8(value).map(str::to_owned)
    }

    fn decode(&self, text: &str) -> Result<Vec<u8>, Self::Error> {
        Ok(text.as_bytes().to_vec())
    }
}

/// Values are any bytes, stored as standard padded base64.
#[derive(Debug, Clone, Copy, Default)]
pub struct Base64;

impl ValueCodec for Base64 {
    type Error = base64::DecodeError;

    fn encode(&self, value: &[u8]) -> Result<String, Self::Error> {
        Ok(base64::engine::general_purpose::STANDARD.encode(value))
    }

    fn decode(&self, text: &str) -> Result<Vec<u8>, Self::Error> {
        base64::engine::general_purpose::STANDARD.decode(text)
    }
}

/// Values are any bytes, stored in the protocol's 78-character table
/// encoding (two characters per byte), as the newer Python client does.
#[derive(Debug, Clone, Copy, Default)]
pub struct Table;

impl ValueCodec for Table {
    type Error = codec::DecodeError;

    fn encode(&self, value: &[u8]) -> Result<String, Self::Error> {
        Ok(codec::encode(value))
    }

    fn decode(&self, text: &str) -> Result<Vec<u8>, Self::Error> {
        codec::decode(text.as_bytes())
    }
}

/// A codec made of two closures (or functions) that share an error type.
///
/// ```
/// use jackrabbit_dlm::client::{FnCodec, ValueCodec};
///
/// // Stores values reversed; fails on text that is not UTF-8.
/// let reversed = FnCodec::new(
///     |value: &[u8]| {
///         let text = std::str::from_utf8(value).map_err(|e| e.to_string())?;
///         Ok::<_, String>(text.chars().rev().collect())
///     },
///     |text: &str| Ok(text.chars().rev().collect::<String>().into_bytes()),
/// );
/// assert_eq!(reversed.encode(b"abc").unwrap(), "cba");
/// assert_eq!(reversed.decode("cba").unwrap(), b"abc");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct FnCodec<E, D> {
    encode: E,
    decode: D,
}

impl<E, D> FnCodec<E, D> {
    /// A codec that encodes with `encode` and decodes with `decode`.
    pub fn new(encode: E, decode: D) -> FnCodec<E, D> {
        FnCodec { encode, decode }
    }
}

impl<E, D, Err> ValueCodec for FnCodec<E, D>
where
    E: Fn(&[u8]) -> Result<String, Err> + Send,
    D: Fn(&str) -> Result<Vec<u8>, Err> + Send,
    Err: Into<BoxError>,
{
    type Error = Err;

    fn encode(&self, value: &[u8]) -> Result<String, Err> {
        (self.encode)(value)
    }

    fn decode(&self, text: &str) -> Result<Vec<u8>, Err> {
        (self.decode)(text)
    }
}

/// A [`ValueCodec`] with its error type erased, so a `Locker` can hold any
/// codec behind one pointer.
pub(crate) trait ErasedCodec: Send {
    fn encode_value(&self, value: &[u8]) -> Result<String, BoxError>;
    fn decode_value(&self, text: &str) -> Result<Vec<u8>, BoxError>;
}

impl<C: ValueCodec> ErasedCodec for C {
    fn encode_value(&self, value: &[u8]) -> Result<String, BoxError> {
        self.encode(value).map_err(Into::into)
    }

    fn decode_value(&self, text: &str) -> Result<Vec<u8>, BoxError> {
        self.decode(text).map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_byte() -> Vec<u8> {
        (0..=255).collect()
    }

    #[test]
    fn binary_codecs_round_trip_every_byte() {
        let all = every_byte();
        assert_eq!(Base64.decode(&Base64.encode(&all).unwrap()).unwrap(), all);
        assert_eq!(Table.decode(&Table.encode(&all).unwrap()).unwrap(), all);
    }

    #[test]
    fn identity_keeps_text_and_refuses_other_bytes() {
        assert_eq!(Identity.encode("é中".as_bytes()).unwrap(), "é中");
        assert_eq!(Identity.decode("é中").unwrap(), "é中".as_bytes());
        assert!(Identity.encode(&[0xff]).is_err());
    }

    #[test]
    fn decoding_garbage_is_an_error() {
        assert!(Base64.decode("not base64!").is_err());
        assert!(Table.decode("~~").is_err());
    }
}
