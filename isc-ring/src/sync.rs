//! Atomics shim: `core` atomics normally, `loom`'s under `cfg(loom)`, so the
//! loom models exercise exactly the orderings the ring ships with.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, Ordering};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{fence, AtomicU32, Ordering};
