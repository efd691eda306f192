//! Sample drivers, for the `isc-sim-server` binary, examples and tests.

use crate::host::{Handle, Message, SimDriver};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Replies to each call with the message reversed in place and rc = its
/// length. A call `post <n>` (decimal) instead posts `post 0` … `post
/// <n-1>` to the user and returns how many were accepted (it stops at the
/// first refusal, e.g. a full ring). Posts `hello` when bound.
#[derive(Debug, Default)]
pub struct EchoDriver {
    handle: Mutex<Option<Handle>>,
    bound: AtomicU64,
    unbound: AtomicU64,
    got: AtomicU64,
}

/// How many times each [`EchoDriver`] callback ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EchoCounts {
    /// `bound` calls.
    pub bound: u64,
    /// `unbind` calls.
    pub unbound: u64,
    /// `got` calls.
    pub got: u64,
}

impl EchoDriver {
    /// A driver with zeroed counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// The callback counts so far.
    pub fn counts(&self) -> EchoCounts {
        // Relaxed: plain counters, read for reporting.
        EchoCounts {
            bound: self.bound.load(Ordering::Relaxed),
            unbound: self.unbound.load(Ordering::Relaxed),
            got: self.got.load(Ordering::Relaxed),
        }
    }

    /// The handle of the current binding, if bound.
    pub fn handle(&self) -> Option<Handle> {
        self.handle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn post_n(&self, n: u32) -> i32 {
        let Some(h) = self.handle() else { return 0 };
        let mut sent = 0;
        for i in 0..n {
            if h.post(format!("post {i}").as_bytes()).is_err() {
                break;
            }
            sent += 1;
        }
        sent
    }
}

impl SimDriver for EchoDriver {
    fn bound(&self, handle: Handle) {
        let _ = handle.post(b"hello");
        *self.handle.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
        self.bound.fetch_add(1, Ordering::Relaxed);
    }

    fn unbind(&self) {
        *self.handle.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.unbound.fetch_add(1, Ordering::Relaxed);
    }

    fn got(&self, msg: &mut Message) -> i32 {
        self.got.fetch_add(1, Ordering::Relaxed);
        let count = msg
            .data()
            .strip_prefix(b"post ")
            .and_then(|rest| std::str::from_utf8(rest).ok())
            .and_then(|s| s.trim().parse::<u32>().ok());
        match count {
            Some(n) => self.post_n(n.min(1 << 20)),
            None => {
                msg.data_mut().reverse();
                msg.len() as i32
            }
        }
    }
}

/// Accepts every message and returns rc 0 without writing a reply (the
/// slot keeps the message bytes): the cheapest possible driver, for
/// throughput measurements.
#[derive(Debug, Default)]
pub struct SinkDriver {
    got: AtomicU64,
}

impl SinkDriver {
    /// A driver with a zeroed counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Messages received so far.
    pub fn received(&self) -> u64 {
        self.got.load(Ordering::Relaxed)
    }
}

impl SimDriver for SinkDriver {
    fn bound(&self, _handle: Handle) {}

    fn unbind(&self) {}

    fn got(&self, _msg: &mut Message) -> i32 {
        self.got.fetch_add(1, Ordering::Relaxed);
        0
    }
}

/// The sample protocol's driver (the userspace twin of `isc_sample.ko`):
/// 256 32-bit registers behind 12-byte messages `{u32 id; u32 a; u32 b}`.
///
/// - id `0x001` reads register `a`: the reply is the request with `b` set
///   to its value, rc 0;
/// - id `0x002` writes `b` into register `a`: the reply is the request,
///   rc 0;
/// - a message shorter than 12 bytes, an unknown id or an index >= 256:
///   rc `-EINVAL`, message unchanged.
///
/// While bound, the [`IrqTimer`] started by [`RegisterDriver::start_irq`]
/// posts `{0x100, 1, status}` every period, the status counting from 1 per
/// binding (a post refused because the ring is full still uses a number).
#[derive(Debug)]
pub struct RegisterDriver {
    registers: Mutex<[u32; REGISTER_COUNT]>,
    /// The current binding's handle and its status counter.
    binding: Mutex<Option<(Handle, u32)>>,
}

/// Registers of [`RegisterDriver`].
pub const REGISTER_COUNT: usize = 256;
/// Opcode: read register.
pub const SAMPLE_READ_REG: u32 = 0x001;
/// Opcode: write register.
pub const SAMPLE_WRITE_REG: u32 = 0x002;
/// Opcode of the irq status posts.
pub const SAMPLE_IRQ_STAT: u32 = 0x100;
/// The irq id of the status posts.
pub const SAMPLE_IRQ_ID: u32 = 1;

impl Default for RegisterDriver {
    fn default() -> Self {
        Self {
            registers: Mutex::new([0; REGISTER_COUNT]),
            binding: Mutex::new(None),
        }
    }
}

impl RegisterDriver {
    /// A driver with every register 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts posting an irq status every `period` while bound; the timer
    /// stops when the returned value is dropped.
    pub fn start_irq(self: &std::sync::Arc<Self>, period: std::time::Duration) -> IrqTimer {
        let (stop, rx) = std::sync::mpsc::channel::<()>();
        let driver = std::sync::Arc::clone(self);
        let thread = std::thread::Builder::new()
            .name("sample irq".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(period)
                {
                    driver.tick();
                }
            })
            .ok();
        IrqTimer {
            stop: Some(stop),
            thread,
        }
    }

    /// One irq: posts the next status if bound.
    fn tick(&self) {
        let mut binding = self.binding.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((handle, status)) = binding.as_mut() {
            *status = status.wrapping_add(1);
            let mut msg = [0u8; 12];
            for (i, v) in [SAMPLE_IRQ_STAT, SAMPLE_IRQ_ID, *status].iter().enumerate() {
                msg[4 * i..4 * i + 4].copy_from_slice(&v.to_ne_bytes());
            }
            // A full ring drops the post; its number stays used.
            let _ = handle.post(&msg);
        }
    }
}

impl SimDriver for RegisterDriver {
    fn bound(&self, handle: Handle) {
        *self.binding.lock().unwrap_or_else(PoisonError::into_inner) = Some((handle, 0));
    }

    fn unbind(&self) {
        *self.binding.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn got(&self, msg: &mut Message) -> i32 {
        const EINVAL: i32 = 22;
        let data = msg.data_mut();
        if data.len() < 12 {
            return -EINVAL;
        }
        let word = |d: &[u8], i: usize| {
            u32::from_ne_bytes([d[4 * i], d[4 * i + 1], d[4 * i + 2], d[4 * i + 3]])
        };
        let (id, index) = (word(data, 0), word(data, 1) as usize);
        let mut regs = self
            .registers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(reg) = regs.get_mut(index) else {
            return -EINVAL;
        };
        match id {
            SAMPLE_READ_REG => data[8..12].copy_from_slice(&reg.to_ne_bytes()),
            SAMPLE_WRITE_REG => *reg = word(data, 2),
            _ => return -EINVAL,
        }
        0
    }
}

/// The irq timer of a [`RegisterDriver`]; dropping it stops the timer.
#[derive(Debug)]
pub struct IrqTimer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for IrqTimer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
