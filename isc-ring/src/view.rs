//! What a producer and a consumer share: a validated view of one ring.

use crate::abi::{RingInfo, FLAGS_OFFSET, HEAD_OFFSET, SLOTS_OFFSET, TAIL_OFFSET};
use crate::config::RingConfig;
use crate::error::Corruption;
use crate::mem::Mem;
use crate::sync::Ordering;
use core::mem::{offset_of, size_of};

/// Offsets of the slot header fields, relative to the slot.
pub(crate) const SEQ: usize = offset_of!(crate::abi::SlotHeader, seq);
pub(crate) const LEN: usize = offset_of!(crate::abi::SlotHeader, len);
pub(crate) const FLAGS: usize = offset_of!(crate::abi::SlotHeader, flags);
pub(crate) const RC: usize = offset_of!(crate::abi::SlotHeader, rc);
pub(crate) const PAYLOAD: usize = size_of::<crate::abi::SlotHeader>();

const _: () = assert!(SEQ == 0 && LEN == 4 && FLAGS == 8 && RC == 12 && PAYLOAD == 16);

/// A slot header's words, in field order (`seq`, `len`, `flags`, `rc`).
pub(crate) type Header = [u32; 4];

/// Reads the header of the slot at `slot` with one 16-byte copy (the fields
/// are validated on the copy, never re-read).
#[inline]
pub(crate) fn read_header(mem: &Mem, slot: usize) -> Header {
    let mut raw = [0u8; PAYLOAD];
    mem.read(slot, &mut raw);
    let word = |i: usize| u32::from_ne_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
    [word(SEQ), word(LEN), word(FLAGS), word(RC)]
}

/// Writes the header of the slot at `slot` with one 16-byte copy.
#[inline]
pub(crate) fn write_header(mem: &Mem, slot: usize, h: Header) {
    write_words(mem, slot + SEQ, &h);
}

/// Writes consecutive header words (at most four) from byte `off` on with
/// one copy.
#[inline]
pub(crate) fn write_words(mem: &Mem, off: usize, words: &[u32]) {
    let mut raw = [0u8; PAYLOAD];
    for (dst, w) in raw.chunks_exact_mut(4).zip(words) {
        dst.copy_from_slice(&w.to_ne_bytes());
    }
    mem.write(off, &raw[..4 * words.len()]);
}

/// The geometry of an attached ring, read from its header once and validated;
/// the shared header is never consulted again, so a peer rewriting it later
/// changes nothing.
#[derive(Debug)]
pub(crate) struct View {
    pub mem: Mem,
    pub slot_count: u32,
    pub msz: u32,
    stride: usize,
}

impl View {
    /// Validates the header at the start of `mem` against `mem`'s length.
    pub fn attach(mem: Mem) -> Result<Self, Corruption> {
        let len = mem.len();
        if len < SLOTS_OFFSET as usize {
            return Err(Corruption::BadGeometry { len });
        }
        let mut raw = [0u8; size_of::<RingInfo>()];
        mem.read(0, &mut raw);
        let info = <RingInfo as zerocopy::FromBytes>::read_from_bytes(&raw)
            .map_err(|_| Corruption::BadGeometry { len })?;
        if info.magic != crate::abi::RING_MAGIC {
            return Err(Corruption::BadMagic(info.magic));
        }
        if info.abi_version != crate::abi::ABI_VERSION {
            return Err(Corruption::BadAbiVersion {
                found: info.abi_version,
                expected: crate::abi::ABI_VERSION,
            });
        }
        // The header must be exactly what `RingConfig` derives from its own
        // msz and slot_count: that bounds every slot offset by `ring_bytes`.
        let cfg = RingConfig::new(info.msz, info.slot_count)
            .map_err(|_| Corruption::BadGeometry { len })?;
        // Benchmark builds also take the other stride alignments, each
        // validated the same way.
        #[cfg(feature = "layout-bench")]
        let cfg = crate::config::BENCH_SLOT_ALIGNS
            .iter()
            .filter_map(|&a| RingConfig::with_slot_align(info.msz, info.slot_count, a))
            .find(|c| c.info() == info)
            .unwrap_or(cfg);
        if cfg.info() != info || cfg.ring_bytes() as usize > len {
            return Err(Corruption::BadGeometry { len });
        }
        Ok(Self {
            mem,
            slot_count: cfg.slot_count(),
            msz: cfg.msz(),
            stride: cfg.slot_stride() as usize,
        })
    }

    /// Byte offset of the slot holding free-running index `idx`.
    #[inline]
    pub fn slot(&self, idx: u32) -> usize {
        SLOTS_OFFSET as usize + (idx & (self.slot_count - 1)) as usize * self.stride
    }

    #[inline]
    pub const fn head_off() -> usize {
        HEAD_OFFSET
    }

    #[inline]
    pub const fn tail_off() -> usize {
        TAIL_OFFSET
    }

    #[inline]
    pub const fn flags_off() -> usize {
        FLAGS_OFFSET
    }
}

/// Whether the peer must be woken (its doorbell rung) after a publish or a
/// release. Ignoring it can leave the peer asleep with work pending.
#[must_use = "ring the peer's doorbell when a wake-up is needed"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeedsWake(pub bool);

impl NeedsWake {
    /// True if the peer asked to be woken.
    #[inline]
    pub fn is_needed(self) -> bool {
        self.0
    }
}

/// The wake-up check a side owes its peer after publishing (or releasing)
/// without a fence: `owed` until a SeqCst fence and a read of the peer's
/// flag settle it; `ring` when that read found the peer asleep but the
/// doorbell could not be reported yet (inside `prepare_wait`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Deferred {
    owed: bool,
    ring: bool,
}

impl Deferred {
    #[inline]
    pub fn is_owed(&self) -> bool {
        self.owed
    }

    #[inline]
    pub fn ring_owed(&self) -> bool {
        self.ring
    }

    /// After an unfenced read of the peer's flag: a request seen settles
    /// every earlier debt (the doorbell follows this side's newest index
    /// store); none seen leaves a check owed.
    #[inline]
    pub fn owe(&mut self, seen: NeedsWake) -> NeedsWake {
        self.owed = !seen.0;
        NeedsWake(seen.0 | core::mem::take(&mut self.ring))
    }

    /// After a fenced read of the peer's flag: nothing is owed any more.
    #[inline]
    pub fn settle(&mut self, seen: NeedsWake) -> NeedsWake {
        self.owed = false;
        NeedsWake(seen.0 | core::mem::take(&mut self.ring))
    }

    /// Like `settle`, keeping a needed doorbell for the next report.
    #[inline]
    pub fn keep(&mut self, seen: NeedsWake) {
        self.owed = false;
        self.ring |= seen.0;
    }

    /// Reports (and forgets) a doorbell kept by `keep`.
    #[inline]
    pub fn take_ring(&mut self) -> NeedsWake {
        NeedsWake(core::mem::take(&mut self.ring))
    }
}

/// Reads a peer's wake-up request (after a SeqCst fence, for the guarantee;
/// without one, as a hint), consuming it.
#[inline]
pub(crate) fn peer_wake(mem: &Mem, bit: u32) -> NeedsWake {
    if mem.load(View::flags_off(), Ordering::Relaxed) & bit == 0 {
        return NeedsWake(false);
    }
    // Clear it so a burst of publishes rings the doorbell once.
    mem.fetch_and(View::flags_off(), !bit, Ordering::Relaxed);
    NeedsWake(true)
}
