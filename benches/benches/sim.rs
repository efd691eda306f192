//! The simulated transport across two processes against the classic Unix
//! pathways, in one run: 64-byte messages, one-way throughput and call
//! round trip.
//!
//! At start-up (still single-threaded) the benchmark forks a peer process
//! that serves all three transports:
//! - ISC sim: a `SimHost` listening on a Unix socket, with a driver that
//!   accepts every message and replies in place (rc 0, the message bytes
//!   left as the reply);
//! - a `socketpair(AF_UNIX, SOCK_SEQPACKET)`;
//! - a pair of pipes.
//!
//! Every transport does the same work. One-way: the parent streams `n`
//! 64-byte messages and the measurement ends when the peer has consumed the
//! last one (ISC: the host released it; socket/pipe: the peer acknowledged
//! the last message with one byte). Round trip: send 64 bytes, block until
//! the 64-byte answer is back (ISC: a blocking `call` with its in-place
//! reply; socket/pipe: the peer echoes the message).
//!
//! ISC one-way batches: it fills up to 64 free slots, then publishes them
//! at once and kicks only if the host's service thread sleeps.

use criterion::{BenchmarkId, Criterion, Throughput};
use isc_ring::abi::{BindRequest, RingRequest};
use isc_transport_sim::sample::SinkDriver;
use isc_transport_sim::{SimClient, SimError, SimHost, UserEndpoint};
use nix::sys::socket::{socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use nix::unistd::{fork, pipe2, ForkResult, Pid};
use std::hint::black_box;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MSG: usize = 64;
const UID: u32 = u32::from_le_bytes(*b"bnch");
/// Slots per ISC ring.
const DEPTH: u32 = 256;
/// Most messages the ISC one-way loop publishes at once.
const BATCH: u32 = 64;

/// First byte of a socket/pipe message: what the peer answers.
const NO_ANSWER: u8 = 0;
const ACK: u8 = 1;
const ECHO: u8 = 2;

fn retry<T>(mut f: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    loop {
        match f() {
            Err(nix::errno::Errno::EINTR) => continue,
            r => return r,
        }
    }
}

fn read_exact(fd: BorrowedFd<'_>, buf: &mut [u8]) -> bool {
    let mut got = 0;
    while got < buf.len() {
        match retry(|| nix::unistd::read(fd.as_raw_fd(), &mut buf[got..])) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got += n,
        }
    }
    true
}

fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        match retry(|| nix::unistd::write(fd, buf)) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf = &buf[n..],
        }
    }
    true
}

fn sock_send(fd: BorrowedFd<'_>, buf: &[u8]) -> bool {
    retry(|| nix::sys::socket::send(fd.as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL)).is_ok()
}

fn sock_recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> usize {
    retry(|| nix::sys::socket::recv(fd.as_raw_fd(), buf, MsgFlags::empty())).unwrap_or(0)
}

/// The peer's socket loop: answer each message as its first byte asks.
fn serve_socket(fd: OwnedFd) {
    let mut buf = [0u8; MSG];
    loop {
        let n = sock_recv(fd.as_fd(), &mut buf);
        if n == 0 {
            return;
        }
        let ok = match buf[0] {
            ACK => sock_send(fd.as_fd(), &[ACK]),
            ECHO => sock_send(fd.as_fd(), &buf[..n]),
            _ => true,
        };
        if !ok {
            return;
        }
    }
}

/// The peer's pipe loop: 64-byte records (writes of at most PIPE_BUF bytes
/// are atomic), answered as their first byte asks.
fn serve_pipe(rx: OwnedFd, tx: OwnedFd) {
    let mut buf = [0u8; MSG];
    while read_exact(rx.as_fd(), &mut buf) {
        let ok = match buf[0] {
            ACK => write_all(tx.as_fd(), &[ACK]),
            ECHO => write_all(tx.as_fd(), &buf),
            _ => true,
        };
        if !ok {
            return;
        }
    }
}

/// The forked peer process and the parent's ends of its transports.
struct Peer {
    pid: Pid,
    path: PathBuf,
    sock: OwnedFd,
    pipe_tx: OwnedFd,
    pipe_rx: OwnedFd,
    /// The peer exits when this closes.
    lifeline: Option<OwnedFd>,
}

impl Peer {
    fn start() -> Self {
        let path = std::env::temp_dir().join(format!("isc-bench-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let (sock, peer_sock) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .expect("socketpair");
        let (peer_rx, pipe_tx) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let (pipe_rx, peer_tx) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let (life_rx, life_tx) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        // SAFETY: called first thing in `main`, while the process has a
        // single thread; the child only uses its own copies of the fds and
        // leaves through `exit`.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                drop((sock, pipe_tx, pipe_rx, life_tx));
                let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
                let host = SimHost::new().expect("host");
                host.register(UID, Arc::new(SinkDriver::new()))
                    .expect("register");
                host.listen(&path).expect("listen");
                std::thread::spawn(move || serve_socket(peer_sock));
                std::thread::spawn(move || serve_pipe(peer_rx, peer_tx));
                let mut b = [0u8; 1];
                let _ = read_exact(life_rx.as_fd(), &mut b); // EOF: parent done
                drop(host);
                std::process::exit(0);
            }
            ForkResult::Parent { child } => {
                drop((peer_sock, peer_rx, peer_tx, life_rx));
                Self {
                    pid: child,
                    path,
                    sock,
                    pipe_tx,
                    pipe_rx,
                    lifeline: Some(life_tx),
                }
            }
        }
    }

    fn connect(&self) -> UserEndpoint {
        let ring = RingRequest {
            msz: MSG as u32,
            num: DEPTH,
        };
        let req = BindRequest::new(UID, ring, ring);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match SimClient::connect(&self.path, &req) {
                Ok(ep) => return ep,
                Err(SimError::Io(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("cannot bind to the peer: {e}"),
            }
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.lifeline = None;
        let _ = nix::sys::wait::waitpid(self.pid, None);
        let _ = std::fs::remove_file(&self.path);
    }
}

fn isc_one_way(ep: &mut UserEndpoint, n: u64) -> Duration {
    let msg = [0x5au8; MSG];
    let tx = ep.tx();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut last = 0;
    while sent < n {
        let mut room = tx.producer_mut().free_slots().expect("ring").min(BATCH);
        if room == 0 {
            assert!(tx.wait_space(None).expect("wait"));
            continue;
        }
        while room > 0 && sent < n {
            last = tx.send(&msg).expect("send");
            sent += 1;
            room -= 1;
        }
        tx.publish().expect("publish");
    }
    assert!(tx.wait_released(last, None).expect("wait"));
    start.elapsed()
}

fn isc_round_trip(ep: &mut UserEndpoint, n: u64) -> Duration {
    let msg = [0x5au8; MSG];
    let mut reply = [0u8; MSG];
    let start = Instant::now();
    for _ in 0..n {
        let r = ep.call(&msg, &mut reply, None).expect("call");
        black_box((r, &reply));
    }
    start.elapsed()
}

fn socket_one_way(fd: BorrowedFd<'_>, n: u64) -> Duration {
    let mut msg = [0x5au8; MSG];
    let start = Instant::now();
    for i in 0..n {
        msg[0] = if i + 1 == n { ACK } else { NO_ANSWER };
        assert!(sock_send(fd, &msg));
    }
    let mut ack = [0u8; MSG];
    assert_eq!(sock_recv(fd, &mut ack), 1);
    start.elapsed()
}

fn socket_round_trip(fd: BorrowedFd<'_>, n: u64) -> Duration {
    let mut msg = [0x5au8; MSG];
    msg[0] = ECHO;
    let mut reply = [0u8; MSG];
    let start = Instant::now();
    for _ in 0..n {
        assert!(sock_send(fd, &msg));
        assert_eq!(sock_recv(fd, &mut reply), MSG);
    }
    start.elapsed()
}

fn pipe_one_way(tx: BorrowedFd<'_>, rx: BorrowedFd<'_>, n: u64) -> Duration {
    let mut msg = [0x5au8; MSG];
    let start = Instant::now();
    for i in 0..n {
        msg[0] = if i + 1 == n { ACK } else { NO_ANSWER };
        assert!(write_all(tx, &msg));
    }
    let mut ack = [0u8; 1];
    assert!(read_exact(rx, &mut ack));
    start.elapsed()
}

fn pipe_round_trip(tx: BorrowedFd<'_>, rx: BorrowedFd<'_>, n: u64) -> Duration {
    let mut msg = [0x5au8; MSG];
    msg[0] = ECHO;
    let mut reply = [0u8; MSG];
    let start = Instant::now();
    for _ in 0..n {
        assert!(write_all(tx, &msg));
        assert!(read_exact(rx, &mut reply));
    }
    start.elapsed()
}

fn main() {
    let peer = Peer::start();
    let mut ep = peer.connect();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args();

    let mut g = c.benchmark_group("sim_one_way_64B");
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::from_parameter("isc_sim"), |b| {
        b.iter_custom(|n| isc_one_way(&mut ep, n))
    });
    g.bench_function(BenchmarkId::from_parameter("socketpair_seqpacket"), |b| {
        b.iter_custom(|n| socket_one_way(peer.sock.as_fd(), n))
    });
    g.bench_function(BenchmarkId::from_parameter("pipe"), |b| {
        b.iter_custom(|n| pipe_one_way(peer.pipe_tx.as_fd(), peer.pipe_rx.as_fd(), n))
    });
    g.finish();

    let mut g = c.benchmark_group("sim_round_trip_64B");
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::from_parameter("isc_sim_call"), |b| {
        b.iter_custom(|n| isc_round_trip(&mut ep, n))
    });
    g.bench_function(BenchmarkId::from_parameter("socketpair_seqpacket"), |b| {
        b.iter_custom(|n| socket_round_trip(peer.sock.as_fd(), n))
    });
    g.bench_function(BenchmarkId::from_parameter("pipe"), |b| {
        b.iter_custom(|n| pipe_round_trip(peer.pipe_tx.as_fd(), peer.pipe_rx.as_fd(), n))
    });
    g.finish();

    c.final_summary();
    drop(ep);
    drop(peer);
}
