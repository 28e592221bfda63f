//! Real clusters for end-to-end tests: N `jackrabbit-dlm` processes on
//! loopback, each with its own data directory, which a test kills
//! (SIGKILL), pauses (SIGSTOP), resumes and restarts.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Client, spawn_listening, status, temp_dir};

/// How long a test waits for a cluster to settle (a leader, a catch-up).
pub const SETTLE: Duration = Duration::from_secs(30);

/// One member process.
struct Member {
    child: Child,
    addr: SocketAddr,
}

/// A cluster of real processes; every live member is killed when dropped.
pub struct TestCluster {
    members: Vec<Option<Member>>,
    /// Each member's `--peers` (its own entry is where it listens; the
    /// others are where it reaches them, which a test may route).
    peers: Vec<String>,
    pub dirs: Vec<PathBuf>,
    args: Vec<String>,
    /// Whether each member reads [`TestCluster::clock_file`].
    clock_files: bool,
}

/// Free loopback ports, found by binding port 0 (all held at once, so they
/// differ), for the members' replication addresses.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

impl TestCluster {
    /// `n` members with `args` added to each (e.g. a short heartbeat).
    pub fn start(n: usize, args: &[&str]) -> TestCluster {
        TestCluster::start_routed(n, args, |_, _, addr| addr)
    }

    /// `n` members of which member `from` reaches member `to` (0-based) at
    /// `route(from, to, addr)` instead of at `to`'s replication address
    /// `addr`: a proxy the test controls. Only a member's own entry of
    /// `--peers` is bound, so the others may differ between members.
    pub fn start_routed(
        n: usize,
        args: &[&str],
        route: impl FnMut(usize, usize, SocketAddr) -> SocketAddr,
    ) -> TestCluster {
        TestCluster::start_with(n, args, route, false)
    }

    /// As [`TestCluster::start_routed`], each member reading its clock
    /// offsets from [`TestCluster::clock_file`] (`--clock-offset-file`).
    pub fn start_routed_with_clock_files(
        n: usize,
        args: &[&str],
        route: impl FnMut(usize, usize, SocketAddr) -> SocketAddr,
    ) -> TestCluster {
        TestCluster::start_with(n, args, route, true)
    }

    fn start_with(
        n: usize,
        args: &[&str],
        mut route: impl FnMut(usize, usize, SocketAddr) -> SocketAddr,
        clock_files: bool,
    ) -> TestCluster {
        let addrs: Vec<SocketAddr> = free_ports(n)
            .into_iter()
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
            .collect();
        let peers = (0..n)
            .map(|from| {
                (0..n)
                    .map(|to| {
                        let addr = if to == from {
                            addrs[to]
                        } else {
                            route(from, to, addrs[to])
                        };
                        format!("{}={addr}", to + 1)
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        let mut cluster = TestCluster {
            members: (0..n).map(|_| None).collect(),
            peers,
            dirs: (0..n)
                .map(|i| temp_dir(&format!("member{}", i + 1)))
                .collect(),
            args: args.iter().map(|s| s.to_string()).collect(),
            clock_files,
        };
        for i in 0..n {
            cluster.restart(i);
        }
        cluster
    }

    /// Starts one more member, with `--join` and the next ID, listening
    /// for the others on a free port; its index and that address, for
    /// `dlm cluster add`. Later restarts of any member list it in --peers.
    pub fn start_joining(&mut self) -> (usize, String) {
        let i = self.members.len();
        let addr = format!("127.0.0.1:{}", free_ports(1)[0]);
        let entry = format!(",{}={addr}", i + 1);
        // The newcomer reaches the others as the first member does (an
        // unrouted cluster: at their own addresses).
        let first = self.peers[0].clone();
        self.peers.push(first);
        for peers in &mut self.peers {
            peers.push_str(&entry);
        }
        self.members.push(None);
        self.dirs.push(temp_dir(&format!("member{}", i + 1)));
        self.spawn(i, &["--join"]);
        (i, addr)
    }

    /// Starts member `i` (0-based) again, on its data directory.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i, &[]);
    }

    /// Starts member `i` again with `extra` options besides the cluster's.
    pub fn restart_with_args(&mut self, i: usize, extra: &[&str]) {
        self.spawn(i, extra);
    }

    /// Starts member `i` again on an empty data directory with `--join`
    /// (after it was removed from the cluster), at the address it had.
    pub fn rejoin(&mut self, i: usize) {
        let data = self.dirs[i].join("data");
        let _ = std::fs::remove_dir_all(&data);
        self.spawn(i, &["--join"]);
    }

    /// Where member `i` reads its clock offsets, `MONOTONIC_MS WALL_MS`,
    /// in a cluster started with them.
    pub fn clock_file(&self, i: usize) -> PathBuf {
        self.dirs[i].join("clock-offsets")
    }

    /// Member `i`'s replication address, as its own `--peers` entry says.
    pub fn members_addr(&self, i: usize) -> String {
        let own = format!("{}=", i + 1);
        let entry = self.peers[i].split(',').find(|e| e.starts_with(&own));
        entry.expect("its own entry")[own.len()..].to_owned()
    }

    /// Starts member `i` again with `--peers` naming only the first `n`
    /// members (as an operator who did not update it after a join).
    pub fn restart_with_peers(&mut self, i: usize, n: usize) {
        let all = self.peers[i].clone();
        self.peers[i] = all.split(',').take(n).collect::<Vec<_>>().join(",");
        self.spawn(i, &[]);
        self.peers[i] = all;
    }

    fn spawn(&mut self, i: usize, extra: &[&str]) {
        assert!(self.members[i].is_none(), "member {i} is running");
        let dir = &self.dirs[i];
        let mut command = Command::new(env!("CARGO_BIN_EXE_jackrabbit-dlm"));
        command
            .args(["127.0.0.1", "0", "--log-dir"])
            .arg(dir)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--peers", &self.peers[i], "--node-id", &(i + 1).to_string()])
            .args(&self.args)
            .args(extra)
            .stderr(Stdio::null());
        if self.clock_files {
            command.arg("--clock-offset-file").arg(self.clock_file(i));
        }
        let (child, addr) = spawn_listening(&mut command);
        self.members[i] = Some(Member { child, addr });
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_up(&self, i: usize) -> bool {
        self.members[i].is_some()
    }

    pub fn addr(&self, i: usize) -> SocketAddr {
        self.members[i].as_ref().expect("member is up").addr
    }

    pub fn client(&self, i: usize) -> Client {
        Client::connect(self.addr(i))
    }

    fn pid(&self, i: usize) -> i32 {
        let pid = self.members[i].as_ref().expect("member is up").child.id();
        i32::try_from(pid).expect("pid")
    }

    fn signal(&self, i: usize, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.pid(i), signal) };
        assert_eq!(rc, 0, "kill({signal})");
    }

    /// `kill -9` of member `i`, reaped.
    pub fn kill(&mut self, i: usize) {
        self.signal(i, libc::SIGKILL);
        let mut member = self.members[i].take().expect("member is up");
        member.child.wait().expect("reap");
    }

    /// SIGTERM to member `i` (a graceful stop: a leader hands over
    /// first), then waits for it to exit; its exit status.
    pub fn terminate(&mut self, i: usize) -> std::process::ExitStatus {
        self.signal(i, libc::SIGTERM);
        let mut member = self.members[i].take().expect("member is up");
        member.child.wait().expect("reap")
    }

    pub fn pause(&self, i: usize) {
        self.signal(i, libc::SIGSTOP);
    }

    pub fn resume(&self, i: usize) {
        self.signal(i, libc::SIGCONT);
    }

    /// Member `i`'s `Stats` reply (a fresh connection each time, so a
    /// paused member never holds a test's connection).
    pub fn stats(&self, i: usize) -> serde_json::Value {
        self.client(i)
            .call(r#"{"Action":"Stats","ID":"t","FileName":"t"}"#)
    }

    /// Waits until one of `among` says it leads and every other member in
    /// `among` knows it; its index.
    pub fn leader_among(&self, among: &[usize]) -> usize {
        let start = Instant::now();
        // Each round asks every member over a fresh connection: the
        // round trips pace the loop, which ends when the members agree.
        loop {
            let leaders: Vec<u64> = among
                .iter()
                .map(|&i| self.stats(i)["Leader"].as_u64().unwrap_or(0))
                .collect();
            if let Some(&first) = leaders.first() {
                let index = usize::try_from(first).unwrap_or(0).wrapping_sub(1);
                if first != 0 && leaders.iter().all(|&l| l == first) && among.contains(&index) {
                    return index;
                }
            }
            assert!(
                start.elapsed() < SETTLE,
                "no leader among {among:?}: {leaders:?}"
            );
        }
    }

    /// The leader among the members that are up.
    pub fn leader(&self) -> usize {
        let up: Vec<usize> = (0..self.len()).filter(|&i| self.is_up(i)).collect();
        self.leader_among(&up)
    }

    /// Waits until member `i` has applied at least `index`.
    pub fn wait_applied(&self, i: usize, index: u64) {
        self.until(
            i,
            |s| s["Applied"].as_u64().unwrap_or(0) >= index,
            "applied the index",
        );
    }

    /// Asks member `i` for its `Stats` until `check` holds (each round trip
    /// paces the next), failing after [`SETTLE`].
    fn until(&self, i: usize, check: impl Fn(&serde_json::Value) -> bool, what: &str) {
        let start = Instant::now();
        while !check(&self.stats(i)) {
            assert!(start.elapsed() < SETTLE, "member {i} never {what}");
        }
    }

    /// Waits until member `i` has applied `n` parked waits (`Waited`).
    pub fn wait_parked(&self, i: usize, n: u64) {
        self.until(
            i,
            |s| s["Waited"].as_u64().unwrap_or(0) >= n,
            "parked the waits",
        );
    }

    /// Sends `request` to member `i` until it is answered with something
    /// other than `Unavailable` (a cluster between leaders), and returns it.
    pub fn call_settled(&self, i: usize, request: &str) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let reply = self.client(i).call(request);
            if status(&reply) != "Unavailable" {
                return reply;
            }
            assert!(start.elapsed() < SETTLE, "still Unavailable: {request}");
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for member in self.members.iter_mut().flatten() {
            let pid = i32::try_from(member.child.id()).unwrap_or(0);
            // SAFETY: kill(2) on our own child's pid; a paused one must be
            // resumed to die by SIGTERM, SIGKILL needs no resume.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            let _ = member.child.wait();
        }
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
