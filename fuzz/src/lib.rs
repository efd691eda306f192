//! Shared scaffolding of the fuzz targets: a ring inside guarded memory.

use arbitrary::Arbitrary;
use isc_ring::RingConfig;
use std::ptr::NonNull;

const GUARD: usize = 4096;
const GUARD_BYTE: u8 = 0xA5;

/// A write of the hostile peer: `value` at `offset` (4-aligned, wrapped
/// into the ring) — it lands on indices, slot headers or payloads.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Scribble {
    pub offset: u16,
    pub value: u32,
}

/// How the fuzzer sets up the ring before attaching.
#[derive(Arbitrary, Debug)]
pub enum Setup {
    /// A valid ring of a small geometry (see [`Setup::geometry`]), then
    /// scribbles. Small rings keep executions fast; the geometry rules
    /// themselves are covered by the unit and property tests.
    Valid {
        msz: u16,
        num: u8,
        start_index: u32,
        scribbles: Vec<Scribble>,
    },
    /// Entirely arbitrary bytes of arbitrary length.
    Raw(Vec<u8>),
}

impl Setup {
    /// `(msz, num)` of a `Valid` setup: msz in 1..=512, num in 1..=64.
    pub fn geometry(msz: u16, num: u8) -> (u32, u32) {
        (1 + u32::from(msz) % 512, 1 + u32::from(num) % 64)
    }
}

/// Page-aligned memory with guard pages on both sides of the ring.
pub struct Guarded {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl Guarded {
    pub fn new(setup: &Setup) -> Self {
        let len = match setup {
            Setup::Valid { msz, num, .. } => {
                let (msz, num) = Setup::geometry(*msz, *num);
                RingConfig::new(msz, num)
                    .map(|c| c.ring_bytes() as usize)
                    .unwrap_or(4096)
            }
            Setup::Raw(bytes) => bytes.len().min(1 << 16),
        };
        let mut buf = vec![GUARD_BYTE; len + 3 * GUARD];
        let start = GUARD + (GUARD - buf.as_ptr() as usize % GUARD) % GUARD;
        let ring = &mut buf[start..start + len];
        match setup {
            Setup::Valid {
                msz,
                num,
                start_index,
                scribbles,
            } => {
                let (msz, num) = Setup::geometry(*msz, *num);
                if let Ok(cfg) = RingConfig::new(msz, num) {
                    cfg.init(ring).expect("aligned and long enough");
                    // Start the indices anywhere, to cross the u32 wrap.
                    for off in [isc_ring::abi::HEAD_OFFSET, isc_ring::abi::TAIL_OFFSET] {
                        ring[off..off + 4].copy_from_slice(&start_index.to_ne_bytes());
                    }
                }
                let mut g = Self { buf, start, len };
                scribbles.iter().for_each(|s| g.scribble(*s));
                return g;
            }
            Setup::Raw(bytes) => ring.copy_from_slice(&bytes[..len]),
        }
        Self { buf, start, len }
    }

    pub fn ptr(&mut self) -> NonNull<u8> {
        NonNull::new(self.buf[self.start..].as_mut_ptr()).expect("non-null")
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn scribble(&mut self, s: Scribble) {
        if self.len < 4 {
            return;
        }
        let off = (usize::from(s.offset) & !3) % (self.len & !3);
        let at = self.start + off;
        self.buf[at..at + 4].copy_from_slice(&s.value.to_ne_bytes());
    }

    /// Panics if anything outside the ring was written.
    pub fn check_guards(&self) {
        let before = &self.buf[..self.start];
        let after = &self.buf[self.start + self.len..];
        assert!(
            before.iter().chain(after).all(|&b| b == GUARD_BYTE),
            "write outside the ring"
        );
    }
}
