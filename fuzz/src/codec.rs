//! `codec`: the table encoding round-trips every byte string, and decoding
//! any text either inverts encoding exactly or names the first thing wrong.
//!
//! Input: the bytes, used both as data to encode and as text to decode.
//!
//! - `decode(encode(x)) == x`, the encoding is twice as long and uses only
//!   the alphabet, and `encode_into` appends to what is already there;
//! - `decode(t)` succeeds exactly when a naive reading of PROTOCOL.md accepts
//!   `t` (even length, every character in the alphabet, every pair at most
//!   255), and then `encode(decode(t)) == t`; otherwise its error is the
//!   naive reading's first complaint.

use jackrabbit_dlm::protocol::codec::{
    ALPHABET, DecodeError, decode, decode_into, encode, encode_into,
};

/// PROTOCOL.md's decoding, written the slow and obvious way.
fn naive_decode(text: &[u8]) -> Result<Vec<u8>, DecodeError> {
    if text.len() % 2 == 1 {
        return Err(DecodeError::OddLength);
    }
    let index = |c: u8| ALPHABET.iter().position(|&a| a == c);
    let mut out = Vec::new();
    for at in (0..text.len()).step_by(2) {
        let hi = index(text[at]).ok_or(DecodeError::NotInAlphabet(at))?;
        let lo = index(text[at + 1]).ok_or(DecodeError::NotInAlphabet(at + 1))?;
        let value = hi * 78 + lo;
        let Ok(byte) = u8::try_from(value) else {
            return Err(DecodeError::OutOfRange(at));
        };
        out.push(byte);
    }
    Ok(out)
}

pub fn check(data: &[u8]) {
    let text = encode(data);
    assert_eq!(text.len(), data.len() * 2);
    assert!(text.bytes().all(|c| ALPHABET.contains(&c)));
    assert_eq!(decode(text.as_bytes()).as_deref(), Ok(data));

    let mut appended = b"prefix".to_vec();
    encode_into(data, &mut appended);
    assert_eq!(&appended[..6], b"prefix");
    assert_eq!(&appended[6..], text.as_bytes());

    let decoded = decode(data);
    assert_eq!(decoded, naive_decode(data));
    if let Ok(plain) = &decoded {
        assert_eq!(
            encode(plain).as_bytes(),
            data,
            "two encodings of one byte string"
        );
        let mut out = b"x".to_vec();
        assert_eq!(decode_into(data, &mut out), Ok(()));
        assert_eq!(&out[1..], &plain[..]);
    }
}
