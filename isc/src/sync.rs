//! The primitives of the completion hand-off ([`crate::flight`]): std's
//! normally, loom's under `cfg(isc_loom)` so the loom model checks the
//! orderings the facade ships with.

#[cfg(isc_loom)]
pub(crate) use loom::cell::UnsafeCell;
#[cfg(isc_loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, Ordering};

#[cfg(not(isc_loom))]
pub(crate) use std::sync::atomic::{AtomicU32, Ordering};

/// `UnsafeCell` with loom's access API, so one source serves both builds.
#[cfg(not(isc_loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(isc_loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(v: T) -> Self {
        Self(std::cell::UnsafeCell::new(v))
    }

    /// Runs `f` with a raw pointer to the contents; the caller's protocol
    /// decides when dereferencing it is sound.
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
