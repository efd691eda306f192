//! Ring and region geometry: validated sizes, exact lengths, header init.

use crate::abi::{
    BindRequest, RingHeader, RingInfo, SlotHeader, ABI_VERSION, MAX_MSZ, MAX_RING_BYTES, MAX_SLOTS,
    REGION_ALIGN, RING_MAGIC, SLOTS_OFFSET, SLOT_ALIGN,
};
use crate::error::{BindError, ConfigError};
use core::mem::size_of;
use zerocopy::{FromBytes, FromZeros};

/// The stride alignments [`RingConfig::with_slot_align`] accepts.
#[cfg(feature = "layout-bench")]
pub const BENCH_SLOT_ALIGNS: [u32; 4] = [8, 16, 32, 64];

/// Rounds `v` up to a multiple of `align` (a power of two), `None` on overflow.
const fn round_up(v: u32, align: u32) -> Option<u32> {
    match v.checked_add(align - 1) {
        Some(x) => Some(x & !(align - 1)),
        None => None,
    }
}

/// The validated geometry of one ring.
///
/// ```
/// use isc_ring::RingConfig;
/// let cfg = RingConfig::new(64, 10).unwrap();
/// assert_eq!(cfg.slot_count(), 16); // depth rounds up to a power of two
/// assert_eq!(cfg.msz(), 64);
/// assert_eq!(cfg.ring_bytes() % 4096, 0);
/// assert!(RingConfig::new(0, 8).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingConfig {
    msz: u32,
    slot_count: u32,
    slot_stride: u32,
    ring_bytes: u32,
}

impl RingConfig {
    /// Validates a payload size `msz` and a depth `num` (rounded up to a power
    /// of two) against the hard caps, with checked arithmetic throughout.
    pub const fn new(msz: u32, num: u32) -> Result<Self, ConfigError> {
        Self::aligned(msz, num, SLOT_ALIGN)
    }

    /// Like [`RingConfig::new`], with slot strides a multiple of `align`
    /// instead of [`SLOT_ALIGN`]: a ring the ABI does not define, for
    /// benchmarking slot layouts against each other. `None` unless `align`
    /// is one of [`BENCH_SLOT_ALIGNS`] and [`RingConfig::new`] would accept
    /// `msz` and `num`. Views attach to such rings only in builds with the
    /// `layout-bench` feature.
    #[cfg(feature = "layout-bench")]
    pub const fn with_slot_align(msz: u32, num: u32, align: u32) -> Option<Self> {
        let mut i = 0;
        while i < BENCH_SLOT_ALIGNS.len() {
            if BENCH_SLOT_ALIGNS[i] == align {
                return match Self::aligned(msz, num, align) {
                    Ok(cfg) => Some(cfg),
                    Err(_) => None,
                };
            }
            i += 1;
        }
        None
    }

    /// The geometry for a stride alignment `align` (a power of two, at
    /// least 8).
    const fn aligned(msz: u32, num: u32, align: u32) -> Result<Self, ConfigError> {
        if msz == 0 || msz > MAX_MSZ {
            return Err(ConfigError::BadMsz { msz, max: MAX_MSZ });
        }
        if num == 0 || num > MAX_SLOTS {
            return Err(ConfigError::BadNum {
                num,
                max: MAX_SLOTS,
            });
        }
        let slot_count = match num.checked_next_power_of_two() {
            Some(n) if n <= MAX_SLOTS => n,
            _ => {
                return Err(ConfigError::BadNum {
                    num,
                    max: MAX_SLOTS,
                })
            }
        };
        let slot_stride = match msz.checked_add(size_of::<SlotHeader>() as u32) {
            Some(raw) => match round_up(raw, align) {
                Some(s) => s,
                None => {
                    return Err(ConfigError::TooBig {
                        max: MAX_RING_BYTES,
                    })
                }
            },
            None => {
                return Err(ConfigError::TooBig {
                    max: MAX_RING_BYTES,
                })
            }
        };
        let ring_bytes = match slot_stride.checked_mul(slot_count) {
            Some(slots) => match slots.checked_add(SLOTS_OFFSET) {
                Some(raw) => match round_up(raw, REGION_ALIGN) {
                    Some(b) if b <= MAX_RING_BYTES => b,
                    _ => {
                        return Err(ConfigError::TooBig {
                            max: MAX_RING_BYTES,
                        })
                    }
                },
                None => {
                    return Err(ConfigError::TooBig {
                        max: MAX_RING_BYTES,
                    })
                }
            },
            None => {
                return Err(ConfigError::TooBig {
                    max: MAX_RING_BYTES,
                })
            }
        };
        Ok(Self {
            msz,
            slot_count,
            slot_stride,
            ring_bytes,
        })
    }

    /// Payload capacity of one slot, in bytes.
    pub const fn msz(&self) -> u32 {
        self.msz
    }

    /// Number of slots (a power of two, at least the requested depth).
    pub const fn slot_count(&self) -> u32 {
        self.slot_count
    }

    /// Distance between slots, in bytes.
    pub const fn slot_stride(&self) -> u32 {
        self.slot_stride
    }

    /// Exact length of the ring (header and slots), a multiple of [`REGION_ALIGN`].
    pub const fn ring_bytes(&self) -> u32 {
        self.ring_bytes
    }

    /// The header [`RingConfig::init`] writes.
    pub const fn info(&self) -> RingInfo {
        RingInfo {
            magic: RING_MAGIC,
            abi_version: ABI_VERSION,
            slot_count: self.slot_count,
            msz: self.msz,
            slot_stride: self.slot_stride,
            features: 0,
            slots_offset: SLOTS_OFFSET,
            ring_bytes: self.ring_bytes,
            reserved: [0; 8],
        }
    }

    /// Writes a fresh ring into a modelled region (loom builds only).
    #[cfg(loom)]
    pub fn init_modeled(&self, mem: &crate::mem::Mem) {
        let info = self.info();
        mem.write(0, zerocopy::IntoBytes::as_bytes(&info));
    }

    /// Writes a fresh ring (header with zero indices, zeroed slots) at the
    /// start of `mem`, which must be 64-byte aligned and at least
    /// [`RingConfig::ring_bytes`] long.
    ///
    /// Only for memory no peer can see yet; a live ring is re-initialised by
    /// no one.
    ///
    /// ```
    /// # use isc_ring::RingConfig;
    /// #[repr(C, align(4096))]
    /// struct Page([u8; 8192]);
    /// let mut page = Page([0xAA; 8192]);
    /// let cfg = RingConfig::new(32, 4).unwrap();
    /// cfg.init(&mut page.0).unwrap();
    /// ```
    pub fn init(&self, mem: &mut [u8]) -> Result<(), ConfigError> {
        let need = self.ring_bytes as usize;
        let have = mem.len();
        let ring = mem
            .get_mut(..need)
            .ok_or(ConfigError::RegionTooSmall { need, have })?;
        let (header, slots) =
            RingHeader::mut_from_prefix(ring).map_err(|_| ConfigError::Misaligned)?;
        header.zero();
        header.info = self.info();
        slots.fill(0);
        Ok(())
    }
}

/// Where the two rings of a channel sit in its region.
///
/// ```
/// use isc_ring::{ChannelLayout, RingConfig};
/// let layout = ChannelLayout::new(RingConfig::new(64, 32).unwrap(), RingConfig::new(12, 8).unwrap());
/// assert_eq!(layout.u2k_offset(), 0);
/// assert_eq!(layout.k2u_offset(), layout.u2k().ring_bytes());
/// assert_eq!(layout.region_bytes(), layout.u2k().ring_bytes() + layout.k2u().ring_bytes());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelLayout {
    u2k: RingConfig,
    k2u: RingConfig,
}

impl ChannelLayout {
    /// Lays out `u2k` at offset 0 and `k2u` right after it. Both ring sizes
    /// are bounded by `MAX_RING_BYTES`, so the sum cannot overflow.
    pub const fn new(u2k: RingConfig, k2u: RingConfig) -> Self {
        Self { u2k, k2u }
    }

    /// The user-to-kernel ring.
    pub const fn u2k(&self) -> RingConfig {
        self.u2k
    }

    /// The kernel-to-user ring.
    pub const fn k2u(&self) -> RingConfig {
        self.k2u
    }

    /// Offset of the `u2k` ring.
    pub const fn u2k_offset(&self) -> u32 {
        0
    }

    /// Offset of the `k2u` ring.
    pub const fn k2u_offset(&self) -> u32 {
        self.u2k.ring_bytes
    }

    /// Total region length.
    pub const fn region_bytes(&self) -> u32 {
        self.u2k.ring_bytes + self.k2u.ring_bytes
    }

    /// Validates a bind request exactly as the device does: ABI version,
    /// zero flags and reserved fields, then both ring geometries.
    ///
    /// ```
    /// use isc_ring::abi::{BindRequest, RingRequest, ABI_VERSION};
    /// use isc_ring::{BindError, ChannelLayout};
    /// let mut req = BindRequest {
    ///     abi_version: ABI_VERSION,
    ///     uid: u32::from_le_bytes(*b"sam0"),
    ///     u2k: RingRequest { msz: 12, num: 8 },
    ///     k2u: RingRequest { msz: 12, num: 8 },
    ///     ..Default::default()
    /// };
    /// assert!(ChannelLayout::from_request(&req).is_ok());
    /// req.k2u.num = 0;
    /// assert!(matches!(ChannelLayout::from_request(&req), Err(BindError::Ring { ring: "k2u", .. })));
    /// ```
    pub const fn from_request(req: &BindRequest) -> Result<Self, BindError> {
        if req.abi_version != ABI_VERSION {
            return Err(BindError::AbiVersion {
                found: req.abi_version,
                expected: ABI_VERSION,
            });
        }
        if req.flags != 0 || req.reserved != 0 {
            return Err(BindError::Reserved);
        }
        let u2k = match RingConfig::new(req.u2k.msz, req.u2k.num) {
            Ok(c) => c,
            Err(error) => return Err(BindError::Ring { ring: "u2k", error }),
        };
        let k2u = match RingConfig::new(req.k2u.msz, req.k2u.num) {
            Ok(c) => c,
            Err(error) => return Err(BindError::Ring { ring: "k2u", error }),
        };
        Ok(Self::new(u2k, k2u))
    }

    /// Initialises both rings in `region`.
    pub fn init(&self, region: &mut [u8]) -> Result<(), ConfigError> {
        let need = self.region_bytes() as usize;
        if region.len() < need {
            return Err(ConfigError::RegionTooSmall {
                need,
                have: region.len(),
            });
        }
        let (u2k, k2u) = region.split_at_mut(self.k2u_offset() as usize);
        self.u2k.init(u2k)?;
        self.k2u.init(k2u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_zero_and_oversized() {
        assert_eq!(
            RingConfig::new(0, 1),
            Err(ConfigError::BadMsz {
                msz: 0,
                max: MAX_MSZ
            })
        );
        assert!(matches!(
            RingConfig::new(MAX_MSZ + 1, 1),
            Err(ConfigError::BadMsz { .. })
        ));
        assert!(matches!(
            RingConfig::new(1, 0),
            Err(ConfigError::BadNum { .. })
        ));
        assert!(matches!(
            RingConfig::new(1, MAX_SLOTS + 1),
            Err(ConfigError::BadNum { .. })
        ));
        assert!(matches!(
            RingConfig::new(1, u32::MAX),
            Err(ConfigError::BadNum { .. })
        ));
        assert!(matches!(
            RingConfig::new(MAX_MSZ, MAX_SLOTS),
            Err(ConfigError::TooBig { .. })
        ));
    }

    #[test]
    fn geometry_is_exact() {
        let c = RingConfig::new(64, 3).unwrap();
        assert_eq!(c.slot_count(), 4);
        assert_eq!(
            c.slot_stride(),
            80,
            "16-byte header, 64-byte payload, packed"
        );
        assert_eq!(c.ring_bytes(), 4096);
        let c = RingConfig::new(1, 1).unwrap();
        assert_eq!((c.slot_count(), c.slot_stride()), (1, 24));
        let c = RingConfig::new(8, 1024).unwrap();
        assert_eq!(c.slot_stride(), 24);
        assert_eq!(c.ring_bytes(), (256 + 24 * 1024u32).div_ceil(4096) * 4096);
        let c = RingConfig::new(4001, 64).unwrap();
        assert_eq!(c.slot_stride(), 4024);
        assert_eq!(c.ring_bytes(), (256 + 4024 * 64u32).div_ceil(4096) * 4096);
        let c = RingConfig::new(4096, 2).unwrap();
        assert_eq!(c.slot_stride(), 4112);
    }

    #[test]
    fn every_accepted_config_fits_the_cap() {
        for msz in [1, 2, 63, 64, 1000, 4096, 65535, 65536] {
            for num in [1, 2, 3, 1000, 4096, 65535, 65536] {
                if let Ok(c) = RingConfig::new(msz, num) {
                    let slots = c.slot_stride() as u64 * c.slot_count() as u64;
                    assert!(slots + 256 <= c.ring_bytes() as u64);
                    assert!(c.ring_bytes() <= MAX_RING_BYTES);
                    assert!(c.slot_stride() >= msz + 16);
                    assert!(c.slot_stride() < msz + 16 + SLOT_ALIGN);
                    assert_eq!(c.slot_stride() % SLOT_ALIGN, 0);
                }
            }
        }
    }

    #[test]
    fn init_checks_length_and_alignment() {
        #[repr(C, align(4096))]
        struct Pages([u8; 8192]);
        let mut p = Pages([0xff; 8192]);
        let c = RingConfig::new(64, 4).unwrap();
        assert!(matches!(
            c.init(&mut p.0[..100]),
            Err(ConfigError::RegionTooSmall { .. })
        ));
        assert_eq!(c.init(&mut p.0[4..4100]), Err(ConfigError::Misaligned));
        c.init(&mut p.0).unwrap();
        assert_eq!(&p.0[0..4], b"ISCR");
        assert!(p.0[64..4096].iter().all(|&b| b == 0));
    }
}

#[cfg(all(test, feature = "layout-bench", not(loom)))]
mod layout_bench_tests {
    use super::{RingConfig, BENCH_SLOT_ALIGNS};
    use crate::{Consumer, Producer};

    /// Each benchmark alignment gives the stride it promises, a ring the
    /// views attach to and carry messages through; others are refused.
    #[test]
    fn other_alignments_build_working_rings() {
        #[repr(C, align(4096))]
        struct Pages([u8; 3 * 4096]);
        for align in BENCH_SLOT_ALIGNS {
            for msz in [1u32, 8, 20, 64, 100] {
                let cfg = RingConfig::with_slot_align(msz, 8, align).unwrap();
                let want = (16 + msz).div_ceil(align) * align;
                assert_eq!(cfg.slot_stride(), want, "align {align} msz {msz}");
                let mut pages = Pages([0; 3 * 4096]);
                cfg.init(&mut pages.0).unwrap();
                let ptr = core::ptr::NonNull::new(pages.0.as_mut_ptr()).unwrap();
                // SAFETY: `pages` outlives both views; one producer, one consumer.
                let (mut tx, mut rx) = unsafe {
                    (
                        Producer::new(ptr, pages.0.len()).unwrap(),
                        Consumer::new(ptr, pages.0.len()).unwrap(),
                    )
                };
                let msg: [u8; 100] = core::array::from_fn(|i| i as u8 ^ align as u8);
                for round in 0..20u32 {
                    tx.push(&msg[..msz as usize], round).unwrap();
                    let _ = tx.publish();
                    let m = rx.peek().unwrap().unwrap();
                    let mut buf = [0u8; 100];
                    assert_eq!(m.read(&mut buf), msz as usize);
                    assert_eq!(
                        (&buf[..msz as usize], m.flags()),
                        (&msg[..msz as usize], round)
                    );
                    m.consume();
                    let _ = rx.release();
                }
            }
        }
        assert!(RingConfig::with_slot_align(8, 8, 12).is_none());
        assert!(RingConfig::with_slot_align(8, 8, 128).is_none());
        assert!(RingConfig::with_slot_align(0, 8, 16).is_none());
    }
}
