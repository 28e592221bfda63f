//! A proxy on every directed link between members: member `from` sends its
//! replication traffic for member `to` through the link `(from, to)`, which
//! forwards it to `to`'s replication address unless the test says
//! otherwise.
//!
//! A link can be cut (its connections closed on both sides, new ones
//! accepted and closed at once until it heals), slowed (every chunk held
//! back for a while before it is forwarded) or bounced (its connections
//! closed, new ones let through): TCP loses no byte inside a stream, so a
//! lost, duplicated or reordered message is, on these links, a connection
//! closed and opened again by the member (every 200 ms), which resends what
//! raft still needs.
//!
//! A member added back to the cluster is reached by all at the one address
//! its `AddMember` gave: [`Network::route_into`] makes a listener for it
//! that reads each connection's `Hello` to tell which member opened it,
//! and then carries it as the link from that member, faults included.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use jackrabbit_dlm::replication::wire::{self, Frame};

/// How long the proxy tries to reach a member before it gives up on a
/// connection (the member opens it again).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What a link does now, and the connections it carries.
#[derive(Default)]
struct State {
    cut: bool,
    delay: Duration,
    /// Both sides of every connection being forwarded, to close them.
    open: Vec<TcpStream>,
}

impl State {
    fn close_all(&mut self) {
        for stream in self.open.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// One directed link: a listener standing for member `to`.
struct Link {
    listen: SocketAddr,
    state: Arc<Mutex<State>>,
    acceptor: Option<JoinHandle<()>>,
}

/// The proxies between `n` members.
pub struct Network {
    n: usize,
    /// Link `(from, to)` at `from * n + to`; `None` on the diagonal.
    links: Vec<Option<Link>>,
    /// The listeners of [`Network::route_into`].
    into: Vec<Link>,
    closed: Arc<AtomicBool>,
}

impl Network {
    /// A network for `n` members, every link passing, none listening yet
    /// ([`Network::route`] makes them as the cluster asks).
    pub fn new(n: usize) -> Network {
        Network {
            n,
            links: (0..n * n).map(|_| None).collect(),
            into: Vec::new(),
            closed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The address member `from` is to use for member `to`, whose
    /// replication address is `target`: a new link's listener (the routing
    /// function of `TestCluster::start_routed`).
    pub fn route(&mut self, from: usize, to: usize, target: SocketAddr) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a proxy");
        let listen = listener.local_addr().expect("proxy address");
        let state = Arc::new(Mutex::new(State::default()));
        let (shared, closed) = (state.clone(), self.closed.clone());
        let acceptor = std::thread::spawn(move || accept(listener, target, shared, closed));
        self.links[from * self.n + to] = Some(Link {
            listen,
            state,
            acceptor: Some(acceptor),
        });
        listen
    }

    /// One address at which every member reaches member `to`, whose
    /// replication address is `target`, through the link from itself (made
    /// by [`Network::route`] before): for an `AddMember` of `to`.
    pub fn route_into(&mut self, to: usize, target: SocketAddr) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a proxy");
        let listen = listener.local_addr().expect("proxy address");
        let links: Vec<Option<Arc<Mutex<State>>>> = (0..self.n)
            .map(|from| {
                self.links[from * self.n + to]
                    .as_ref()
                    .map(|link| link.state.clone())
            })
            .collect();
        let closed = self.closed.clone();
        let acceptor = std::thread::spawn(move || accept_into(listener, target, links, closed));
        self.into.push(Link {
            listen,
            state: Arc::default(),
            acceptor: Some(acceptor),
        });
        listen
    }

    fn with_link(&self, from: usize, to: usize, change: impl FnOnce(&mut State)) {
        let link = self.links[from * self.n + to]
            .as_ref()
            .expect("a link between two members");
        change(&mut link.state.lock().unwrap());
    }

    fn each_link(&self, mut change: impl FnMut(usize, usize, &mut State)) {
        for from in 0..self.n {
            for to in (0..self.n).filter(|&to| to != from) {
                self.with_link(from, to, |state| change(from, to, state));
            }
        }
    }

    /// Cuts the link `from -> to` (one direction only).
    pub fn cut(&self, from: usize, to: usize) {
        self.with_link(from, to, |state| {
            state.cut = true;
            state.close_all();
        });
    }

    /// Cuts every link between a member of `side` and one outside it, both
    /// ways.
    pub fn partition(&self, side: &[usize]) {
        self.each_link(|from, to, state| {
            if side.contains(&from) != side.contains(&to) {
                state.cut = true;
                state.close_all();
            }
        });
    }

    /// Holds back every chunk on `from -> to` for `delay`.
    pub fn delay(&self, from: usize, to: usize, delay: Duration) {
        self.with_link(from, to, |state| state.delay = delay);
    }

    /// Closes every connection on every link; the members open them again.
    pub fn bounce(&self) {
        self.each_link(|_, _, state| state.close_all());
    }

    /// Every link passing again, without delay.
    pub fn heal(&self) {
        self.each_link(|_, _, state| {
            state.cut = false;
            state.delay = Duration::ZERO;
        });
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
        for link in self.links.iter_mut().flatten().chain(&mut self.into) {
            link.state.lock().unwrap().close_all();
            // A connection of our own wakes the acceptor, which sees
            // `closed` and returns.
            let _ = TcpStream::connect(link.listen);
            if let Some(acceptor) = link.acceptor.take() {
                let _ = acceptor.join();
            }
        }
    }
}

/// Accepts the member's connections for one link and forwards each to
/// `target` on a thread of its own, until the network is closed.
fn accept(
    listener: TcpListener,
    target: SocketAddr,
    state: Arc<Mutex<State>>,
    closed: Arc<AtomicBool>,
) {
    for incoming in listener.incoming() {
        if closed.load(Ordering::Relaxed) {
            return;
        }
        let Ok(incoming) = incoming else { continue };
        if state.lock().unwrap().cut {
            continue;
        }
        let Ok(outgoing) = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) else {
            continue;
        };
        let _ = outgoing.set_nodelay(true);
        let (Ok(a), Ok(b)) = (incoming.try_clone(), outgoing.try_clone()) else {
            continue;
        };
        {
            let mut state = state.lock().unwrap();
            if state.cut {
                continue;
            }
            state.open.extend([a, b]);
        }
        let state = state.clone();
        std::thread::spawn(move || forward(incoming, outgoing, &state));
    }
}

/// As [`accept`], for connections from any member: each is read up to
/// its `Hello` (on a thread of its own) and then carried as the link from
/// the member it names.
fn accept_into(
    listener: TcpListener,
    target: SocketAddr,
    links: Vec<Option<Arc<Mutex<State>>>>,
    closed: Arc<AtomicBool>,
) {
    let links = Arc::new(links);
    for incoming in listener.incoming() {
        if closed.load(Ordering::Relaxed) {
            return;
        }
        let Ok(incoming) = incoming else { continue };
        let links = links.clone();
        std::thread::spawn(move || {
            let Some((from, hello)) = read_hello(&incoming) else {
                return;
            };
            let Some(Some(state)) = links.get(from) else {
                return;
            };
            let Ok(mut outgoing) = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) else {
                return;
            };
            let _ = outgoing.set_nodelay(true);
            let (Ok(a), Ok(b)) = (incoming.try_clone(), outgoing.try_clone()) else {
                return;
            };
            {
                let mut state = state.lock().unwrap();
                if state.cut {
                    return;
                }
                state.open.extend([a, b]);
            }
            if outgoing.write_all(&hello).is_ok() {
                forward(incoming, outgoing, state);
            }
        });
    }
}

/// Reads a member's connection up to its first frame, its `Hello`: the
/// member (0-based) and the bytes read.
fn read_hello(mut stream: &TcpStream) -> Option<(usize, Vec<u8>)> {
    stream.set_read_timeout(Some(CONNECT_TIMEOUT)).ok()?;
    let mut read = Vec::new();
    let mut buffer = [0; 512];
    loop {
        match wire::next_frame(&read, 64 * 1024) {
            Ok(Some((Frame::Hello { node, .. }, _))) => {
                stream.set_read_timeout(None).ok()?;
                let from = usize::try_from(node).ok()?.checked_sub(1)?;
                return Some((from, read));
            }
            Ok(None) => {}
            _ => return None,
        }
        let n = stream.read(&mut buffer).ok().filter(|&n| n > 0)?;
        read.extend_from_slice(&buffer[..n]);
    }
}

/// Copies what the sending member writes to the receiving member, each
/// chunk after the link's delay, until either side closes or the link
/// closes them.
fn forward(mut from: TcpStream, mut to: TcpStream, state: &Mutex<State>) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let delay = state.lock().unwrap().delay;
        if !delay.is_zero() {
            // The fault itself: a slow link, not a wait for anything.
            std::thread::sleep(delay);
        }
        if to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
