//! Blocking side conversations with a target, outside the measured window:
//! checking that it answers, loading Redis's unlock script, reading the
//! counters back for `--verify`, filling it for the memory figures.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::wire::resp::{self, Value};
use crate::wire::{Dialect, Names, Op, Outcome, Parsed};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Counters read per round trip, so neither side's buffers fill up.
const COUNTERS_PER_BATCH: u32 = 256;

/// A blocking connection with timeouts, so a stuck target fails the run
/// instead of hanging it.
pub struct Session {
    addr: SocketAddr,
    stream: TcpStream,
    input: Vec<u8>,
}

impl Session {
    pub fn open(addr: SocketAddr) -> Result<Self, String> {
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let timeouts = stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)));
        timeouts.map_err(|e| format!("cannot set timeouts on {addr}: {e}"))?;
        Ok(Session {
            addr,
            stream,
            input: Vec::new(),
        })
    }

    pub fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        let addr = self.addr;
        self.stream
            .write_all(bytes)
            .map_err(|e| format!("cannot write to {addr}: {e}"))
    }

    /// Calls `take` on the unread input until it reports a complete reply
    /// (`Some(length)`), reading more as needed.
    pub fn receive<T>(
        &mut self,
        mut take: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, String>,
    ) -> Result<T, String> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some((value, len)) = take(&self.input)? {
                self.input.drain(..len);
                return Ok(value);
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(format!("{} closed the connection", self.addr)),
                Ok(n) => self.input.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("cannot read from {}: {e}", self.addr)),
            }
        }
    }
}

/// Fails unless something accepts connections at `addr`.
pub fn probe(addr: SocketAddr) -> Result<(), String> {
    Session::open(addr).map(drop)
}

/// Loads the compare-and-delete unlock script into Redis; returns its SHA.
pub fn load_unlock_script(addr: SocketAddr) -> Result<Box<[u8]>, String> {
    let mut session = Session::open(addr)?;
    let mut request = Vec::new();
    resp::write_args(
        &mut request,
        &[b"SCRIPT", b"LOAD", resp::UNLOCK_SCRIPT.as_bytes()],
    );
    session.send(&request)?;
    session.receive(|buf| match resp::parse_value(buf) {
        Ok(None) => Ok(None),
        Ok(Some((Value::Bulk(Some(sha)), len))) => Ok(Some((sha.to_vec().into_boxed_slice(), len))),
        Ok(Some((Value::Error(e), _))) => Err(format!(
            "{addr} refused SCRIPT LOAD: {}",
            String::from_utf8_lossy(e)
        )),
        _ => Err(format!(
            "{addr} gave an unexpected reply to SCRIPT LOAD; is it Redis?"
        )),
    })
}

/// Reads every resource's counter (a missing counter reads as zero).
pub fn read_counters(
    addr: SocketAddr,
    dialect: &Dialect,
    names: &Names,
) -> Result<Vec<u64>, String> {
    let mut session = Session::open(addr)?;
    let resources =
        u32::try_from(names.locks.len()).map_err(|_| "too many resources".to_string())?;
    let mut values = Vec::with_capacity(resources as usize);
    let mut request = Vec::new();
    let mut scratch = Vec::new();
    let mut first = 0;
    while first < resources {
        let last = (first + COUNTERS_PER_BATCH).min(resources);
        request.clear();
        for r in first..last {
            dialect.write(&mut request, &mut scratch, names, b"", r, Op::Get);
        }
        session.send(&request)?;
        for _ in first..last {
            let value = session.receive(|buf| match dialect.parse(buf, Op::Get, &mut scratch) {
                Parsed::Incomplete => Ok(None),
                Parsed::Reply {
                    outcome: Outcome::Value(v),
                    len,
                } => Ok(Some((v, len))),
                Parsed::Reply {
                    outcome: Outcome::NotFound,
                    len,
                } => Ok(Some((0, len))),
                Parsed::Reply { len, .. } => Err(format!(
                    "unexpected reply when reading a counter: {}",
                    String::from_utf8_lossy(&buf[..len]).trim_end()
                )),
                Parsed::Garbled => Err("garbled reply when reading a counter".to_string()),
            })?;
            values.push(value);
        }
        first = last;
    }
    Ok(values)
}
