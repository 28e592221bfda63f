//! Cutting a connection's byte stream into request lines.
//!
//! A request is one line ending in `\n`; a `\r` before the `\n` is dropped.
//! The line limit counts every byte of the line including its newline, and it
//! is enforced at the same point however the stream was chunked by the
//! network: a line is over the limit as soon as its unfinished part alone
//! reaches the limit (a newline could only make it longer), or when it
//! arrives whole and is longer than the limit.
//!
//! A line over the limit is reported once ([`Frame::Overrun`], with the part
//! of it that is there, so the caller can answer in its encoding) and then
//! discarded: no byte of it is kept, the rest of it up to and including its
//! newline is skipped as it arrives, and the next line is framed as usual.
//!
//! The [`Framer`] keeps two offsets into the caller's buffer and never owns
//! or copies bytes, so the lines it yields can be parsed in place.

use std::ops::Range;

/// What [`Framer::next_line`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete line: its bytes without the newline (and without a `\r`
    /// before it).
    Line(Range<usize>),
    /// No complete line yet; the unfinished part is within the limit.
    Incomplete,
    /// A line over the limit: these are its bytes that are in the buffer
    /// (all of it if it arrived whole, else at least the limit's worth).
    /// They count as consumed, and whatever of the line is still to come is
    /// discarded.
    Overrun(Range<usize>),
}

/// Finds lines in a growing buffer without rescanning bytes it has seen.
#[derive(Debug, Clone)]
pub struct Framer {
    max_line: usize,
    /// Start of the first line not yet handed out.
    start: usize,
    /// Every byte before this offset is known not to be a newline (or was
    /// consumed already).
    scanned: usize,
    /// Inside a line over the limit: skip to past its newline.
    discarding: bool,
    newline: NewlineSearch,
}

impl Framer {
    /// A framer for lines of at most `max_line` bytes including the newline.
    pub fn new(max_line: usize) -> Framer {
        Framer {
            max_line: max_line.max(1),
            start: 0,
            scanned: 0,
            discarding: false,
            newline: NewlineSearch::new(),
        }
    }

    /// The line limit.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Looks for the next complete line in `buf`, which holds every byte
    /// received and not yet discarded (see [`Framer::discard_consumed`]).
    #[inline]
    pub fn next_line(&mut self, buf: &[u8]) -> Frame {
        if self.discarding && !self.skip_discarded(buf) {
            return Frame::Incomplete;
        }
        let from = self.scanned.min(buf.len());
        match self.newline.find(&buf[from..]) {
            Some(offset) => {
                let newline = from + offset;
                let start = self.start;
                if newline + 1 - start > self.max_line {
                    self.start = newline + 1;
                    self.scanned = newline + 1;
                    return Frame::Overrun(start..newline);
                }
                self.start = newline + 1;
                self.scanned = newline + 1;
                let end = if newline > start && buf[newline - 1] == b'\r' {
                    newline - 1
                } else {
                    newline
                };
                Frame::Line(start..end)
            }
            None => {
                self.scanned = buf.len();
                if self.pending(buf) >= self.max_line {
                    let start = self.start;
                    self.start = buf.len();
                    self.discarding = true;
                    Frame::Overrun(start..buf.len())
                } else {
                    Frame::Incomplete
                }
            }
        }
    }

    /// While discarding: consumes `buf` up to and including the overrun
    /// line's newline (true, framing goes on after it), or all of it (false).
    #[cold]
    fn skip_discarded(&mut self, buf: &[u8]) -> bool {
        let from = self.scanned.min(buf.len());
        match self.newline.find(&buf[from..]) {
            Some(offset) => {
                self.start = from + offset + 1;
                self.scanned = self.start;
                self.discarding = false;
                true
            }
            None => {
                self.start = buf.len();
                self.scanned = buf.len();
                false
            }
        }
    }

    /// Whether the rest of a line over the limit is still being skipped.
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    /// Bytes at the front of the buffer that belong to lines already handed out.
    pub fn consumed(&self) -> usize {
        self.start
    }

    /// Bytes of the unfinished line at the end of `buf`.
    pub fn pending(&self, buf: &[u8]) -> usize {
        buf.len().saturating_sub(self.start)
    }

    /// Call after removing the first [`Framer::consumed`] bytes from the buffer.
    pub fn discard_consumed(&mut self) {
        self.scanned -= self.start;
        self.start = 0;
    }

    /// Forget everything (the buffer was emptied).
    pub fn reset(&mut self) {
        self.start = 0;
        self.scanned = 0;
        self.discarding = false;
    }

    /// Hands out the unfinished remainder as a last line: used at end of
    /// stream, where a final request without its newline is still answered.
    pub fn take_rest(&mut self, buf: &[u8]) -> Option<Range<usize>> {
        let start = self.start;
        if start >= buf.len() || self.discarding {
            // The tail of a line over the limit is no request; with the
            // stream over, nothing is being discarded any more.
            self.start = buf.len();
            self.scanned = buf.len();
            self.discarding = false;
            return None;
        }
        self.start = buf.len();
        self.scanned = buf.len();
        let mut end = buf.len();
        if buf[end - 1] == b'\r' {
            end -= 1;
        }
        Some(start..end)
    }
}

/// Finds newlines. On x86-64 with AVX2 it keeps memchr's AVX2 searcher,
/// built once: `memchr::memchr` picks and builds one on every call, which
/// costs a good part of what searching a short line does.
#[derive(Debug, Clone, Copy)]
struct NewlineSearch {
    #[cfg(target_arch = "x86_64")]
    avx2: Option<memchr::arch::x86_64::avx2::memchr::One>,
}

impl NewlineSearch {
    fn new() -> NewlineSearch {
        NewlineSearch {
            #[cfg(target_arch = "x86_64")]
            avx2: memchr::arch::x86_64::avx2::memchr::One::new(b'\n'),
        }
    }

    /// Offset of the first newline in `bytes`.
    fn find(&self, bytes: &[u8]) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        if let Some(avx2) = &self.avx2 {
            return avx2.find(bytes);
        }
        memchr::memchr(b'\n', bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of `stream` fed in the given chunk sizes, with `None` for an overrun.
    fn lines_chunked(stream: &[u8], chunk: usize, max_line: usize) -> Vec<Option<Vec<u8>>> {
        let mut framer = Framer::new(max_line);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for piece in stream.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match framer.next_line(&buf) {
                    Frame::Line(r) => out.push(Some(buf[r].to_vec())),
                    Frame::Incomplete => break,
                    Frame::Overrun(_) => out.push(None),
                }
            }
            let consumed = framer.consumed();
            buf.drain(..consumed);
            framer.discard_consumed();
        }
        out
    }

    #[test]
    fn splits_lines_and_drops_carriage_returns() {
        let got = lines_chunked(b"a\nbc\r\n\n\r\nd", 100, 100);
        let want: Vec<Option<Vec<u8>>> = vec![
            Some(b"a".to_vec()),
            Some(b"bc".to_vec()),
            Some(b"".to_vec()),
            Some(b"".to_vec()),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn one_byte_at_a_time_gives_the_same_lines() {
        let stream = b"{\"ID\":\"a\"}\r\n{}\nxyz\n";
        assert_eq!(
            lines_chunked(stream, 1, 64),
            lines_chunked(stream, stream.len(), 64)
        );
    }

    #[test]
    fn a_line_exactly_at_the_limit_is_served() {
        // 9 bytes plus the newline: exactly a limit of 10.
        let got = lines_chunked(b"123456789\n", 3, 10);
        assert_eq!(got, vec![Some(b"123456789".to_vec())]);
    }

    #[test]
    fn a_line_one_over_the_limit_overruns_whole_or_chunked() {
        let stream = b"1234567890\nok\n";
        let want = vec![None, Some(b"ok".to_vec())];
        assert_eq!(lines_chunked(stream, 100, 10), want);
        assert_eq!(lines_chunked(stream, 1, 10), want);
        assert_eq!(lines_chunked(stream, 4, 10), want);
    }

    #[test]
    fn unfinished_line_at_the_limit_overruns_before_its_newline() {
        let mut framer = Framer::new(4);
        assert_eq!(framer.next_line(b"abc"), Frame::Incomplete);
        assert_eq!(framer.next_line(b"abcd"), Frame::Overrun(0..4));
        // Consumed: nothing of it is kept, and its rest is skipped.
        assert_eq!(framer.consumed(), 4);
        assert!(framer.is_discarding());
    }

    #[test]
    fn the_rest_of_an_overrun_line_is_skipped_then_framing_goes_on() {
        let mut framer = Framer::new(4);
        assert_eq!(framer.next_line(b"abcdef"), Frame::Overrun(0..6));
        framer.discard_consumed();
        assert_eq!(framer.next_line(b"ghi"), Frame::Incomplete);
        assert_eq!(framer.consumed(), 3, "discarded as it arrives");
        framer.discard_consumed();
        assert_eq!(framer.next_line(b"j\nok\n"), Frame::Line(2..4));
        assert!(!framer.is_discarding());
        // At end of stream the tail of an overrun line is no request.
        let mut framer = Framer::new(4);
        assert_eq!(framer.next_line(b"abcdef"), Frame::Overrun(0..6));
        assert_eq!(framer.take_rest(b"abcdefgh"), None);
    }

    #[test]
    fn earlier_lines_are_served_before_an_overrun_and_later_ones_after() {
        let got = lines_chunked(b"ok\n0123456789012\nnext\n", 5, 8);
        assert_eq!(
            got,
            vec![Some(b"ok".to_vec()), None, Some(b"next".to_vec())]
        );
    }

    #[test]
    fn take_rest_returns_an_unterminated_last_line() {
        let mut framer = Framer::new(100);
        let buf = b"a\nlast\r";
        assert_eq!(framer.next_line(buf), Frame::Line(0..1));
        assert_eq!(framer.next_line(buf), Frame::Incomplete);
        assert_eq!(framer.take_rest(buf), Some(2..6));
        assert_eq!(framer.take_rest(buf), None);
    }
}
