//! Access to the shared bytes of a ring.
//!
//! Everything the ring reads or writes in shared memory goes through [`Mem`],
//! by byte offset: indices and flags atomically, slot headers and payloads by
//! copy (a header's fields are only read or written while the index
//! protocol gives its side the slot, and are validated on the copy). Offsets are
//! computed by the ring from geometry it validated once at attach time, so
//! every access is in bounds whatever the peer writes; `Mem` re-checks in debug
//! builds.
//!
//! Under `cfg(loom)` the region is a vector of loom atomics instead of raw
//! memory, and copied bytes (slot headers and payloads) travel through
//! relaxed word accesses, so that loom sees (and reports) a message read
//! without a happens-before edge to its write.

#[cfg(loom)]
pub use modeled::Mem;
#[cfg(not(loom))]
pub use raw::Mem;

#[cfg(not(loom))]
mod raw {
    use crate::sync::{AtomicU32, Ordering};
    use core::ptr::NonNull;

    /// A raw view of shared memory: a base pointer and a length.
    #[derive(Clone, Copy, Debug)]
    pub struct Mem {
        base: NonNull<u8>,
        len: usize,
    }

    impl Mem {
        /// # Safety
        /// `base` must be valid for reads and writes of `len` bytes, 4-byte
        /// aligned, for as long as any view made from this `Mem` lives.
        pub unsafe fn new(base: NonNull<u8>, len: usize) -> Self {
            Self { base, len }
        }

        #[inline]
        pub fn len(&self) -> usize {
            self.len
        }

        #[inline]
        fn word(&self, off: usize) -> &AtomicU32 {
            debug_assert!(off % 4 == 0 && off + 4 <= self.len);
            // SAFETY: `off` is in bounds and 4-aligned (ring geometry is
            // validated against `len` at attach, base is aligned by the
            // constructor's contract); an AtomicU32 has the size and
            // alignment of a u32 and any bit pattern is valid, so sharing it
            // with a peer that writes arbitrary values is sound.
            unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(off).cast()) }
        }

        #[inline]
        pub fn load(&self, off: usize, order: Ordering) -> u32 {
            self.word(off).load(order)
        }

        #[inline]
        pub fn store(&self, off: usize, val: u32, order: Ordering) {
            self.word(off).store(val, order)
        }

        #[inline]
        pub fn fetch_or(&self, off: usize, val: u32, order: Ordering) -> u32 {
            self.word(off).fetch_or(val, order)
        }

        #[inline]
        pub fn fetch_and(&self, off: usize, val: u32, order: Ordering) -> u32 {
            self.word(off).fetch_and(val, order)
        }

        #[inline]
        pub fn read(&self, off: usize, dst: &mut [u8]) {
            debug_assert!(off + dst.len() <= self.len);
            // SAFETY: in bounds (see `word`); `dst` is our own memory and
            // cannot overlap the shared region it is copied from. The peer
            // may write these bytes concurrently: we only ever copy them as
            // plain bytes (every value is valid) and act on the copy.
            unsafe { copy(self.base.as_ptr().add(off), dst.as_mut_ptr(), dst.len()) }
        }

        #[inline]
        pub fn write(&self, off: usize, src: &[u8]) {
            debug_assert!(off + src.len() <= self.len);
            // SAFETY: in bounds; see `read`.
            unsafe { copy(src.as_ptr(), self.base.as_ptr().add(off), src.len()) }
        }

        /// # Safety
        /// The caller must own the bytes `off..off + n` under the ring
        /// protocol for the lifetime of the returned slice.
        #[allow(clippy::mut_from_ref)]
        #[inline]
        pub unsafe fn bytes_mut(&self, off: usize, n: usize) -> &mut [u8] {
            debug_assert!(off + n <= self.len);
            // SAFETY: in bounds; exclusivity is the caller's contract.
            unsafe { core::slice::from_raw_parts_mut(self.base.as_ptr().add(off), n) }
        }
    }

    /// Copies `n` bytes. Messages are mostly small, and a copy of a length
    /// known only at run time would otherwise be a call into `memcpy` per
    /// message: up to 64 bytes are moved inline with (possibly
    /// overlapping) unaligned word loads and stores, every load before any
    /// store.
    ///
    /// # Safety
    /// `src` must be valid for reads and `dst` for writes of `n` bytes, and
    /// the two ranges must not overlap.
    #[inline(always)]
    unsafe fn copy(src: *const u8, dst: *mut u8, n: usize) {
        use core::ptr::{read_unaligned as ld, write_unaligned as st};
        // SAFETY (every branch): each access lies within the first `n` bytes
        // of `src` or `dst`, which the caller guarantees, and the ranges
        // don't overlap; unaligned accesses are allowed by `*_unaligned`.
        unsafe {
            if n <= 16 {
                if n >= 8 {
                    let (a, b) = (ld(src.cast::<u64>()), ld(src.add(n - 8).cast::<u64>()));
                    st(dst.cast::<u64>(), a);
                    st(dst.add(n - 8).cast::<u64>(), b);
                } else if n >= 4 {
                    let (a, b) = (ld(src.cast::<u32>()), ld(src.add(n - 4).cast::<u32>()));
                    st(dst.cast::<u32>(), a);
                    st(dst.add(n - 4).cast::<u32>(), b);
                } else if n > 0 {
                    let (a, b, c) = (*src, *src.add(n / 2), *src.add(n - 1));
                    *dst = a;
                    *dst.add(n / 2) = b;
                    *dst.add(n - 1) = c;
                }
            } else if n <= 32 {
                let (a, b) = (ld(src.cast::<u128>()), ld(src.add(n - 16).cast::<u128>()));
                st(dst.cast::<u128>(), a);
                st(dst.add(n - 16).cast::<u128>(), b);
            } else if n <= 64 {
                let a = ld(src.cast::<u128>());
                let b = ld(src.add(16).cast::<u128>());
                let c = ld(src.add(n - 32).cast::<u128>());
                let d = ld(src.add(n - 16).cast::<u128>());
                st(dst.cast::<u128>(), a);
                st(dst.add(16).cast::<u128>(), b);
                st(dst.add(n - 32).cast::<u128>(), c);
                st(dst.add(n - 16).cast::<u128>(), d);
            } else {
                core::ptr::copy_nonoverlapping(src, dst, n);
            }
        }
    }
}

#[cfg(loom)]
mod modeled {
    extern crate alloc;
    use crate::sync::{AtomicU32, Ordering};
    use alloc::vec::Vec;
    use loom::sync::Arc;

    /// A modelled region: one loom atomic per 32-bit word.
    #[derive(Clone, Debug)]
    pub struct Mem {
        words: Arc<Vec<AtomicU32>>,
    }

    impl Mem {
        /// A zeroed region of `len` bytes (rounded up to whole words).
        pub fn zeroed(len: usize) -> Self {
            let words = (0..len.div_ceil(4)).map(|_| AtomicU32::new(0)).collect();
            Self {
                words: Arc::new(words),
            }
        }

        /// Length in bytes (a whole number of words).
        pub fn len(&self) -> usize {
            self.words.len() * 4
        }

        /// True for a region of no words.
        pub fn is_empty(&self) -> bool {
            self.words.is_empty()
        }

        fn word(&self, off: usize) -> &AtomicU32 {
            assert!(off % 4 == 0);
            &self.words[off / 4]
        }

        /// Atomic load of the word at byte offset `off`.
        pub fn load(&self, off: usize, order: Ordering) -> u32 {
            self.word(off).load(order)
        }

        /// Atomic store of the word at byte offset `off`.
        pub fn store(&self, off: usize, val: u32, order: Ordering) {
            self.word(off).store(val, order)
        }

        /// Atomic OR into the word at byte offset `off`.
        pub fn fetch_or(&self, off: usize, val: u32, order: Ordering) -> u32 {
            self.word(off).fetch_or(val, order)
        }

        /// Atomic AND into the word at byte offset `off`.
        pub fn fetch_and(&self, off: usize, val: u32, order: Ordering) -> u32 {
            self.word(off).fetch_and(val, order)
        }

        /// Copies bytes out, one relaxed word load at a time.
        pub fn read(&self, off: usize, dst: &mut [u8]) {
            for (i, chunk) in dst.chunks_mut(4).enumerate() {
                let w = self.load(off + i * 4, Ordering::Relaxed).to_ne_bytes();
                chunk.copy_from_slice(&w[..chunk.len()]);
            }
        }

        /// Copies bytes in, one relaxed word load and store at a time.
        pub fn write(&self, off: usize, src: &[u8]) {
            for (i, chunk) in src.chunks(4).enumerate() {
                let at = off + i * 4;
                let mut w = self.load(at, Ordering::Relaxed).to_ne_bytes();
                w[..chunk.len()].copy_from_slice(chunk);
                self.store(at, u32::from_ne_bytes(w), Ordering::Relaxed);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Mem;
    use core::ptr::NonNull;

    /// `read` and `write` move exactly the requested bytes, at every length
    /// and offset parity the inline paths distinguish, and nothing else.
    #[test]
    fn copies_exactly_n_bytes() {
        let mut shared = [0u8; 256];
        for (i, b) in shared.iter_mut().enumerate() {
            *b = i as u8;
        }
        let base = NonNull::new(shared.as_mut_ptr()).unwrap();
        // SAFETY: `shared` outlives `mem` and is only accessed through it below.
        let mem = unsafe { Mem::new(base, shared.len()) };
        for off in [0usize, 1, 3, 8, 13] {
            for n in 0..=100usize {
                let mut out = [0xeeu8; 128];
                mem.read(off, &mut out[..n]);
                for (k, &b) in out.iter().enumerate() {
                    let want = if k < n { (off + k) as u8 } else { 0xee };
                    assert_eq!(b, want, "read off {off} n {n} byte {k}");
                }
                let src: [u8; 128] = core::array::from_fn(|k| 0x80 ^ k as u8);
                mem.write(off + 120, &src[..n]);
                let mut back = [0u8; 136];
                mem.read(112, &mut back);
                for (k, &b) in back.iter().enumerate() {
                    let at = 112 + k;
                    let want = if (off + 120..off + 120 + n).contains(&at) {
                        0x80 ^ (at - off - 120) as u8
                    } else {
                        at as u8
                    };
                    assert_eq!(b, want, "write off {off} n {n} byte {at}");
                }
                // Restore the pattern for the next round.
                let orig: [u8; 136] = core::array::from_fn(|k| (112 + k) as u8);
                mem.write(112, &orig);
            }
        }
    }
}
