//! The echo ceiling: the cheapest line server this machine can run.
//!
//! One thread, one `mio::Poll`, no state: every request line gets the same
//! fixed reply. Run against it, lockfight shows what the kernel and the
//! load generator alone allow, which is the bound a real server can only
//! approach. It never looks inside a line; it only counts newlines, so it
//! keeps no input at all, and what it owes a connection is a byte count
//! served from a bank of prebuilt replies.
//!
//! System calls are what it costs, so it makes few: one `read` per readiness
//! event unless that read filled the buffer (a short read has drained the
//! socket; readiness is edge-triggered, so later data raises a new event),
//! then one `write` of every reply owed.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

/// The reply to every line: about the size of a real server's reply.
pub const REPLY: &[u8] = b"{\"Status\":\"Done\",\"ID\":\"lockfight-ceiling\"}\n";
/// Replies per write at most.
const BANK_REPLIES: usize = 512;
const READ_BYTES: usize = 64 * 1024;
const LISTENER: Token = Token(usize::MAX);

struct Client {
    stream: TcpStream,
    /// Reply bytes owed.
    owed: u64,
    /// Offset into [`REPLY`] where the next write starts.
    phase: usize,
}

/// Serves forever on `host:port`, printing the bound address first.
pub fn serve(host: &str, port: u16) -> Result<(), String> {
    let ip: IpAddr = host
        .parse()
        .map_err(|_| format!("HOST must be an IP address, not {host:?}"))?;
    let mut listener = TcpListener::bind(SocketAddr::new(ip, port))
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    let mut poll = Poll::new().map_err(|e| format!("cannot create a poll: {e}"))?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .map_err(|e| format!("cannot register the listener: {e}"))?;
    println!("lockfight ceiling listening on {bound}");
    io::stdout()
        .flush()
        .map_err(|e| format!("cannot write to stdout: {e}"))?;

    let bank = REPLY.repeat(BANK_REPLIES);
    let mut input = vec![0u8; READ_BYTES];
    let mut clients: Slab<Client> = Slab::new();
    let mut events = Events::with_capacity(1024);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll failed: {e}"));
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                accept_all(&listener, &poll, &mut clients);
                continue;
            }
            let key = event.token().0;
            let Some(client) = clients.get_mut(key) else {
                continue;
            };
            let mut alive = true;
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                alive = read_lines(client, &mut input);
            }
            if alive && client.owed > 0 {
                alive = write_owed(client, &bank);
            }
            if !alive {
                // Dropping the stream closes it, which also removes it from the poll.
                clients.remove(key);
            }
        }
    }
}

fn accept_all(listener: &TcpListener, poll: &Poll, clients: &mut Slab<Client>) {
    loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let entry = clients.vacant_entry();
                let token = Token(entry.key());
                if stream.set_nodelay(true).is_err()
                    || poll
                        .registry()
                        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                        .is_err()
                {
                    continue;
                }
                entry.insert(Client {
                    stream,
                    owed: 0,
                    phase: 0,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Out of descriptors and the like: try again on the next event.
            Err(_) => return,
        }
    }
}

/// Reads what is there and owes one reply per newline; false once the
/// connection is finished.
fn read_lines(client: &mut Client, input: &mut [u8]) -> bool {
    loop {
        match client.stream.read(input) {
            Ok(0) => return false,
            Ok(n) => {
                let lines = memchr::memchr_iter(b'\n', &input[..n]).count() as u64;
                client.owed += lines * REPLY.len() as u64;
                if n < input.len() {
                    return true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Writes owed replies until done or the socket is full; false on error.
fn write_owed(client: &mut Client, bank: &[u8]) -> bool {
    while client.owed > 0 {
        let room = bank.len() - client.phase;
        let len = usize::try_from(client.owed).map_or(room, |owed| owed.min(room));
        match client.stream.write(&bank[client.phase..client.phase + len]) {
            Ok(0) => return false,
            Ok(n) => {
                client.owed -= n as u64;
                client.phase = (client.phase + n) % REPLY.len();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}
