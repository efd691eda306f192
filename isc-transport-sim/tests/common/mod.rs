//! Helpers shared by the integration tests.
#![allow(dead_code)]

use isc_ring::abi::{BindRequest, RingRequest, HEAD_OFFSET, SLOTS_OFFSET, TAIL_OFFSET};
use isc_transport_sim::{Event, Handle, Message, SimDriver, SimError, UserEndpoint};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Generous: the machine may be loaded; only failures wait this long.
pub const LONG: Duration = Duration::from_secs(20);
pub const T: Option<Duration> = Some(LONG);

pub fn uid(code: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*code)
}

pub fn req(uid: u32, msz: u32, num: u32) -> BindRequest {
    BindRequest::new(uid, RingRequest::new(msz, num), RingRequest::new(msz, num))
}

pub fn sock_path(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("isc-sim-{}-{tag}-{n}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// Polls `cond` until it holds or `LONG` passes.
pub fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + LONG;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Receives the next event, failing the test on timeout.
pub fn next_event(ep: &mut UserEndpoint) -> (Event, Vec<u8>) {
    let mut buf = vec![0u8; ep.link().layout().k2u().msz() as usize];
    match ep.recv(&mut buf, T) {
        Ok(Some(ev)) => {
            let len = match ev {
                Event::Post { len } => len,
                _ => 0,
            };
            buf.truncate(len);
            (ev, buf)
        }
        other => panic!("expected an event, got {other:?}"),
    }
}

pub fn expect_post(ep: &mut UserEndpoint, want: &[u8]) {
    let (ev, data) = next_event(ep);
    assert_eq!(ev, Event::Post { len: want.len() });
    assert_eq!(data, want);
}

/// Binds, retrying while the UID is still held by a channel being torn down.
pub fn bind_retry(host: &isc_transport_sim::SimHost, r: &BindRequest) -> UserEndpoint {
    let deadline = Instant::now() + LONG;
    loop {
        match host.bind(r) {
            Ok(ep) => return ep,
            Err(SimError::Busy { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(e) => panic!("bind failed: {e}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    Bound,
    Unbind,
    Got(Vec<u8>),
    /// Something a hook wants to record.
    Note(String),
}

type GotHook = Box<dyn Fn(&TestDriver, &mut Message) -> Option<i32> + Send + Sync>;
type BoundHook = Box<dyn Fn(&TestDriver, &Handle) + Send + Sync>;

/// A driver that records its callbacks. By default `got` reverses the
/// message in place and returns its length; hooks can override.
#[derive(Default)]
pub struct TestDriver {
    log: Mutex<Vec<Ev>>,
    cv: Condvar,
    handle: Mutex<Option<Handle>>,
    got_hook: Option<GotHook>,
    bound_hook: Option<BoundHook>,
}

impl TestDriver {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn on_got(
        mut self,
        f: impl Fn(&TestDriver, &mut Message) -> Option<i32> + Send + Sync + 'static,
    ) -> Self {
        self.got_hook = Some(Box::new(f));
        self
    }

    pub fn on_bound(mut self, f: impl Fn(&TestDriver, &Handle) + Send + Sync + 'static) -> Self {
        self.bound_hook = Some(Box::new(f));
        self
    }

    pub fn record(&self, ev: Ev) {
        self.log.lock().unwrap().push(ev);
        self.cv.notify_all();
    }

    pub fn log(&self) -> Vec<Ev> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self, ev: &Ev) -> usize {
        self.log.lock().unwrap().iter().filter(|e| *e == ev).count()
    }

    /// Waits until `ev` was recorded at least `n` times.
    pub fn wait_count(&self, ev: &Ev, n: usize) -> bool {
        let deadline = Instant::now() + LONG;
        let mut log = self.log.lock().unwrap();
        loop {
            if log.iter().filter(|e| *e == ev).count() >= n {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            log = self.cv.wait_timeout(log, left).unwrap().0;
        }
    }

    pub fn handle(&self) -> Option<Handle> {
        self.handle.lock().unwrap().clone()
    }
}

impl SimDriver for TestDriver {
    fn bound(&self, handle: Handle) {
        *self.handle.lock().unwrap() = Some(handle.clone());
        self.record(Ev::Bound);
        if let Some(h) = &self.bound_hook {
            h(self, &handle);
        }
    }

    fn unbind(&self) {
        *self.handle.lock().unwrap() = None;
        self.record(Ev::Unbind);
    }

    fn got(&self, msg: &mut Message) -> i32 {
        self.record(Ev::Got(msg.data().to_vec()));
        if let Some(h) = &self.got_hook {
            if let Some(rc) = h(self, msg) {
                return rc;
            }
        }
        msg.data_mut().reverse();
        msg.len() as i32
    }
}

/// Writes `value` at byte `off` of the endpoint's shared region.
pub fn poke(ep: &UserEndpoint, off: usize, value: u32) {
    let link = ep.link();
    assert!(off % 4 == 0 && off + 4 <= link.region_len());
    // SAFETY: in bounds, aligned, mapping held by `ep`; shared memory is
    // only accessed atomically.
    let w = unsafe { AtomicU32::from_ptr(link.region_ptr().as_ptr().add(off).cast::<u32>()) };
    w.store(value, Ordering::Release);
}

pub fn peek(ep: &UserEndpoint, off: usize) -> u32 {
    let link = ep.link();
    assert!(off % 4 == 0 && off + 4 <= link.region_len());
    // SAFETY: as in `poke`.
    let w = unsafe { AtomicU32::from_ptr(link.region_ptr().as_ptr().add(off).cast::<u32>()) };
    w.load(Ordering::Acquire)
}

/// The ways a hostile user breaks its region.
#[derive(Clone, Copy, Debug)]
pub enum Scribble {
    U2kHead,
    U2kLen,
    U2kFlags,
    K2uTail,
}

pub const ALL_SCRIBBLES: [Scribble; 4] = [
    Scribble::U2kHead,
    Scribble::U2kLen,
    Scribble::U2kFlags,
    Scribble::K2uTail,
];

/// Corrupts the region and kicks the host.
pub fn scribble(ep: &mut UserEndpoint, how: Scribble) {
    let layout = ep.link().layout();
    let k2u = layout.k2u_offset() as usize;
    let bad_msg = |ep: &mut UserEndpoint, field: usize, value: u32| {
        let u2k = layout.u2k();
        let seq = ep.tx().send(b"x").unwrap();
        let slot = SLOTS_OFFSET as usize
            + (seq & (u2k.slot_count() - 1)) as usize * u2k.slot_stride() as usize;
        poke(ep, slot + field, value);
        ep.tx().publish().unwrap();
    };
    match how {
        Scribble::U2kHead => {
            let tail = peek(ep, TAIL_OFFSET);
            poke(ep, HEAD_OFFSET, tail.wrapping_add(0x1000_0000));
        }
        Scribble::U2kLen => bad_msg(ep, 4, u32::MAX),
        Scribble::U2kFlags => bad_msg(ep, 8, 0x77),
        Scribble::K2uTail => {
            let head = peek(ep, k2u + HEAD_OFFSET);
            poke(ep, k2u + TAIL_OFFSET, head.wrapping_add(0x1000_0000));
        }
    }
    ep.link().kick().unwrap();
}

/// A child process driven line by line over stdin/stdout, killed on drop.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            stdin,
            lines,
        }
    }

    pub fn line(&mut self) -> String {
        self.lines
            .recv_timeout(LONG)
            .unwrap_or_else(|e| panic!("child said nothing: {e}"))
    }

    /// Sends one command and returns the one-line answer.
    pub fn ask(&mut self, cmd: &str) -> String {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
        self.line()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Closes stdin and waits (bounded) for a clean exit.
    pub fn finish(mut self) -> bool {
        self.stdin = None;
        let deadline = Instant::now() + LONG;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => return false,
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}
