//! `frame`: a byte stream cut into arbitrary chunks gives the same lines as
//! the whole stream, and the line limit trips at the same byte.
//!
//! Input: one byte choosing the line limit, four bytes seeding the chunking,
//! then the stream. The stream is fed to a [`Framer`] the way a connection
//! does (append, take lines, sometimes discard what was consumed, sometimes
//! not), and compared with [`split_lines`] on the whole stream:
//!
//! - the same lines and overruns, in order, with `\r\n` handled the same way;
//! - an `Overrun` is reported at the first chunk that brings the stream to
//!   the model's `at` for it, never before and never after, with the line's
//!   start (so its first byte tells the encoding), and nothing of the line
//!   is kept;
//! - `Incomplete` leaves less than a line's worth pending, and asking again
//!   without new bytes changes nothing;
//! - at the end, `take_rest` gives the model's unterminated remainder (none
//!   inside a discarded line).

use jackrabbit_dlm::protocol::frame::{Frame, Framer};

use super::input::{Bytes, End, Piece, Rng, split_lines};

/// The line limit the first header byte stands for: mostly tiny, so limits
/// are hit often, sometimes the server's default.
pub fn max_line(selector: u8) -> usize {
    match selector {
        255 => 1 << 20,
        254 => 4096,
        b => b as usize % 96 + 1,
    }
}

pub fn check(data: &[u8]) {
    let mut bytes = Bytes::new(data);
    let max_line = max_line(bytes.u8());
    let mut rng = Rng::new(bytes.u32() as u64);
    let stream = bytes.rest();
    let model = split_lines(stream, max_line);

    let mut framer = Framer::new(max_line);
    let mut buf: Vec<u8> = Vec::new();
    // Stream offset of buf[0].
    let mut base = 0;
    let mut fed = 0;
    let mut pieces = Vec::new();
    while fed < stream.len() {
        let n = rng.chunk_len().min(stream.len() - fed);
        buf.extend_from_slice(&stream[fed..fed + n]);
        fed += n;
        loop {
            let before = framer.consumed();
            let was_discarding = framer.is_discarding();
            match framer.next_line(&buf) {
                Frame::Line(range) => {
                    assert!(range.start >= before && range.end <= buf.len());
                    assert!(framer.consumed() > range.end.max(before));
                    let line = &buf[range];
                    assert!(!line.contains(&b'\n'), "a line holds a newline");
                    pieces.push(Piece::Line(line.to_vec()));
                }
                Frame::Incomplete => {
                    assert!(framer.pending(&buf) < max_line);
                    if was_discarding {
                        // The overrun line's tail is consumed as it comes.
                        assert!(framer.consumed() >= before);
                    } else {
                        assert_eq!(framer.consumed(), before);
                    }
                    assert_eq!(framer.next_line(&buf), Frame::Incomplete);
                    break;
                }
                Frame::Overrun(range) => {
                    let Some(&Piece::Overrun { at, first, end }) = model.pieces.get(pieces.len())
                    else {
                        panic!("an overrun the model does not have, after {fed} bytes");
                    };
                    assert!(
                        fed >= at,
                        "overrun after {fed} bytes, the model's is at {at}"
                    );
                    assert_eq!(
                        base + range.start,
                        at - max_line,
                        "the overrun line's start"
                    );
                    let shown = &buf[range.clone()];
                    assert!(shown.len() >= max_line, "less than a line's worth shown");
                    let head = &shown[..shown.len().min(max_line)];
                    assert_eq!(
                        head.iter().copied().find(|b| !b.is_ascii_whitespace()),
                        first
                    );
                    assert!(framer.consumed() >= range.end, "the overrun line is kept");
                    pieces.push(Piece::Overrun { at, first, end });
                }
            }
        }
        if let Some(&Piece::Overrun { at, .. }) = model.pieces.get(pieces.len()) {
            assert!(
                fed < at,
                "no overrun after {fed} bytes, the model's is at {at}"
            );
        }
        if rng.below(3) != 0 {
            let consumed = framer.consumed();
            buf.drain(..consumed);
            base += consumed;
            framer.discard_consumed();
            assert_eq!(framer.consumed(), 0);
        }
    }
    assert_eq!(pieces, model.pieces, "lines differ from the whole stream's");
    assert!(base <= fed);
    assert_eq!(framer.is_discarding(), model.end == End::Discarding);
    let got = framer.take_rest(&buf).map(|r| buf[r].to_vec());
    match model.end {
        End::Discarding => assert_eq!(got, None, "the tail of an overrun line taken"),
        End::Rest(rest) => assert_eq!(got, rest, "unterminated remainder differs"),
    }
    assert_eq!(framer.take_rest(&buf), None);
}
