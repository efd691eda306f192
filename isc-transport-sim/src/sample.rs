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
