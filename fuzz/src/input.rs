//! Turning fuzzer bytes into scenarios, and the naive framing model.

/// Reads header fields off the front of the fuzzer's bytes; past the end
/// every read gives zero, so any input is a valid scenario.
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data }
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Everything not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// A small deterministic generator (splitmix64) for choices that should not
/// take payload bytes away: chunk sizes, which connection goes next, how much
/// a client reads. The fuzzer still controls it through the seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        jackrabbit_dlm::rng::splitmix64(&mut self.0)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % n as u64).unwrap_or(0)
    }

    /// Mostly small sizes, sometimes large ones: how the network cuts a stream.
    pub fn chunk_len(&mut self) -> usize {
        match self.below(8) {
            0..=3 => 1 + self.below(8),
            4..=5 => 1 + self.below(64),
            6 => 1 + self.below(1024),
            _ => 1 + self.below(70_000),
        }
    }
}

/// One line of a stream, according to the naive model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A line within the limit, its `\r` dropped.
    Line(Vec<u8>),
    /// A line over the limit: answered once `at` bytes of the stream have
    /// arrived (its start plus the limit), in the encoding of `first`, its
    /// first non-whitespace byte among its first `max_line` bytes; the
    /// stream goes on at `end`, just past its newline (`None`: the stream
    /// ends inside it).
    Overrun {
        at: usize,
        first: Option<u8>,
        end: Option<usize>,
    },
}

/// How a byte stream ends, according to the naive model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// With this unterminated remainder (`\r` at its end dropped), or with
    /// nothing.
    Rest(Option<Vec<u8>>),
    /// Inside a line over the limit, whose tail is no request.
    Discarding,
}

/// The lines of a whole stream, computed the obvious way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines {
    pub pieces: Vec<Piece>,
    pub end: End,
}

impl Lines {
    /// Whether, once `fed` bytes have arrived, the stream is inside a line
    /// over the limit that has been reported and not yet ended.
    pub fn discarding_at(&self, fed: usize) -> bool {
        self.pieces.iter().any(|p| {
            matches!(*p, Piece::Overrun { at, end, .. } if at <= fed && end.is_none_or(|e| e > fed))
        })
    }
}

/// Splits `stream` as PROTOCOL.md says: a line ends at `\n`, a `\r` before it
/// is dropped, and a line longer than `max_line` bytes with its newline (or
/// an unterminated remainder that already has `max_line` bytes, since its
/// newline could only make it longer) is an overrun, after which the stream
/// goes on past its newline.
pub fn split_lines(stream: &[u8], max_line: usize) -> Lines {
    let mut pieces = Vec::new();
    let mut start = 0;
    loop {
        let rest = &stream[start..];
        let newline = rest.iter().position(|&b| b == b'\n');
        let long = match newline {
            Some(at) => at + 1 > max_line,
            None => rest.len() >= max_line,
        };
        if long {
            let head = &rest[..rest.len().min(max_line)];
            let first = head.iter().copied().find(|b| !b.is_ascii_whitespace());
            let end = newline.map(|at| start + at + 1);
            pieces.push(Piece::Overrun {
                at: start + max_line,
                first,
                end,
            });
            match end {
                Some(end) => start = end,
                None => {
                    return Lines {
                        pieces,
                        end: End::Discarding,
                    };
                }
            }
            continue;
        }
        match newline {
            Some(at) => {
                pieces.push(Piece::Line(strip_cr(&rest[..at]).to_vec()));
                start += at + 1;
            }
            None => {
                let end = if rest.is_empty() {
                    End::Rest(None)
                } else {
                    End::Rest(Some(strip_cr(rest).to_vec()))
                };
                return Lines { pieces, end };
            }
        }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}
