//! The 78-character table encoding of Jackrabbit DLM.
//!
//! Newer Python clients hide their JSON lines behind a simple substitution:
//! every byte `b` becomes two characters of [`ALPHABET`], `ALPHABET[b / 78]`
//! then `ALPHABET[b % 78]`. It is not encryption; it only keeps the line free
//! of JSON punctuation. The server answers an encoded request with an encoded
//! reply, so it needs both directions.
//!
//! This module is pure: bytes in, bytes out, no allocation beyond the output
//! buffer the caller hands in.

use std::fmt;

/// The 78 characters of the table encoding, in index order.
pub const ALPHABET: &[u8; 78] =
    b"1aA2bB3cC4dD5eE6fF7gG8hH9iI0jJ!kK@lL#mM$nN%oO^pP&qQ*rR(sS)tT/uU?vV=wW+xX;yY:zZ";

/// Marks a byte that is not in the alphabet in [`INDEX`].
const NOT_IN_ALPHABET: u8 = 0xFF;

/// Reverse of [`ALPHABET`]: a character's index, or [`NOT_IN_ALPHABET`].
const INDEX: [u8; 256] = {
    let mut table = [NOT_IN_ALPHABET; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        // `i < 78`: it fits a u8.
        #[allow(clippy::cast_possible_truncation)]
        {
            table[ALPHABET[i] as usize] = i as u8;
        }
        i += 1;
    }
    table
};

/// Each byte's two-character encoding, precomputed so encoding is one lookup.
const PAIRS: [[u8; 2]; 256] = {
    let mut table = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = [ALPHABET[b / 78], ALPHABET[b % 78]];
        b += 1;
    }
    table
};

/// How a line looks on the wire. The first non-whitespace byte of a
/// request tells: `{` is plain JSON, anything else the table encoding; a
/// reply goes back in its request's encoding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// A JSON object per line, as the older Python client sends.
    #[default]
    Plain,
    /// The JSON object's bytes in the 78-character table encoding, as the
    /// newer Python client sends.
    Table,
}

impl Encoding {
    /// The encoding of a line whose first non-whitespace byte is `first`.
    pub fn of_first_byte(first: u8) -> Encoding {
        if first == b'{' {
            Encoding::Plain
        } else {
            Encoding::Table
        }
    }

    /// The table encoding when `table`, else plain: what a command line's
    /// `--encoded` flag asks for.
    pub fn table_when(table: bool) -> Encoding {
        if table {
            Encoding::Table
        } else {
            Encoding::Plain
        }
    }
}

/// Why an encoded string could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The text has an odd number of characters.
    OddLength,
    /// The byte at this offset is not one of the 78 characters.
    NotInAlphabet(usize),
    /// The pair starting at this offset stands for a value above 255.
    OutOfRange(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::OddLength => f.write_str("encoded text has an odd length"),
            DecodeError::NotInAlphabet(at) => {
                write!(f, "byte at offset {at} is not in the table alphabet")
            }
            DecodeError::OutOfRange(at) => {
                write!(f, "pair at offset {at} encodes a value above 255")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Appends the encoding of `bytes` to `out`.
pub fn encode_into(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.extend_from_slice(&PAIRS[b as usize]);
    }
}

/// Encodes `bytes` into a new string.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    encode_into(bytes, &mut out);
    // Every byte of the alphabet is ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends the bytes that `text` encodes to `out`.
///
/// On error `out` may hold a partial result; callers that reuse the buffer
/// clear it first.
pub fn decode_into(text: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    if text.len() % 2 != 0 {
        return Err(DecodeError::OddLength);
    }
    out.reserve(text.len() / 2);
    for (pair_index, pair) in text.chunks_exact(2).enumerate() {
        let at = pair_index * 2;
        let hi = INDEX[pair[0] as usize];
        if hi == NOT_IN_ALPHABET {
            return Err(DecodeError::NotInAlphabet(at));
        }
        let lo = INDEX[pair[1] as usize];
        if lo == NOT_IN_ALPHABET {
            return Err(DecodeError::NotInAlphabet(at + 1));
        }
        let value = hi as u16 * 78 + lo as u16;
        if value > 255 {
            return Err(DecodeError::OutOfRange(at));
        }
        // Checked just above: at most 255.
        #[allow(clippy::cast_possible_truncation)]
        out.push(value as u8);
    }
    Ok(())
}

/// Decodes `text` into a new byte vector.
pub fn decode(text: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(text.len() / 2);
    decode_into(text, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_has_78_distinct_characters() {
        let mut seen = [false; 256];
        for &c in ALPHABET {
            assert!(!seen[c as usize], "{} twice", c as char);
            seen[c as usize] = true;
        }
    }

    #[test]
    fn protocol_example() {
        assert_eq!(encode(b"{\"ID\""), "a^1l1y1W1l");
        assert_eq!(decode(b"a^1l1y1W1l").unwrap(), b"{\"ID\"");
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(encode(&all).as_bytes()).unwrap(), all);
    }

    #[test]
    fn rejects_odd_length() {
        assert_eq!(decode(b"a^1"), Err(DecodeError::OddLength));
    }

    #[test]
    fn rejects_foreign_characters() {
        assert_eq!(decode(b"a^1~"), Err(DecodeError::NotInAlphabet(3)));
        assert_eq!(decode(b"{}"), Err(DecodeError::NotInAlphabet(0)));
    }

    #[test]
    fn rejects_pairs_above_255() {
        // 'zZ' is index 76 * 78 + 77, far above a byte.
        assert_eq!(decode(b"zZ"), Err(DecodeError::OutOfRange(0)));
        // "28" is 3 * 78 + 21 = 255, the last byte; "2h" is 256.
        assert_eq!(encode(&[255]), "28");
        assert_eq!(decode(b"2h"), Err(DecodeError::OutOfRange(0)));
        let last = encode(&[255]);
        assert_eq!(decode(last.as_bytes()).unwrap(), vec![255]);
    }
}
