//! Errors of ring geometry, ring attachment and ring operation.

/// A requested ring geometry is out of bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `msz` is zero or above the cap.
    #[error("message size {msz} out of range 1..={max}")]
    BadMsz {
        /// Requested size.
        msz: u32,
        /// The cap.
        max: u32,
    },
    /// `num` is zero or above the cap.
    #[error("queue depth {num} out of range 1..={max}")]
    BadNum {
        /// Requested depth.
        num: u32,
        /// The cap.
        max: u32,
    },
    /// `msz * num` (with headers) exceeds the per-ring cap.
    #[error("ring would exceed {max} bytes")]
    TooBig {
        /// The cap, in bytes.
        max: u32,
    },
    /// The memory given to `init` is shorter than the ring.
    #[error("region of {have} bytes is too small, {need} needed")]
    RegionTooSmall {
        /// Bytes required.
        need: usize,
        /// Bytes given.
        have: usize,
    },
    /// The memory given is not 64-byte aligned.
    #[error("ring memory is not 64-byte aligned")]
    Misaligned,
}

/// Why a ring in shared memory was judged corrupt. Each names the values read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    /// The header does not start with the ring magic.
    #[error("bad magic {0:#010x}")]
    BadMagic(u32),
    /// The header's ABI version is not ours.
    #[error("ABI version {found}, expected {expected}")]
    BadAbiVersion {
        /// Version in the header.
        found: u32,
        /// Version this library speaks.
        expected: u32,
    },
    /// The header's geometry is invalid or does not fit the mapped length.
    #[error("ring header geometry is invalid or exceeds the {len}-byte mapping")]
    BadGeometry {
        /// Mapped length.
        len: usize,
    },
    /// The shared indices are more than `slot_count` apart, or went backwards.
    #[error("ring indices out of range: head {head}, tail {tail}")]
    Indices {
        /// Producer index read.
        head: u32,
        /// Consumer index read.
        tail: u32,
    },
    /// A slot's length exceeds `msz`.
    #[error("slot {seq} has length {len} > msz {msz}")]
    BadLen {
        /// Index of the slot.
        seq: u32,
        /// Length read.
        len: u32,
        /// The ring's `msz`.
        msz: u32,
    },
    /// A slot's sequence number is not its index.
    #[error("slot {expected} carries sequence {found}")]
    BadSeq {
        /// Index of the slot.
        expected: u32,
        /// Sequence read.
        found: u32,
    },
}

/// An error of a ring operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// The peer broke the ring; every later operation reports the same error.
    #[error("corrupt ring: {0}")]
    Corrupt(#[from] Corruption),
    /// A message or reply is longer than the slot payload.
    #[error("message of {len} bytes exceeds msz {max}")]
    TooLarge {
        /// Length given.
        len: usize,
        /// The ring's `msz`.
        max: u32,
    },
    /// The ring is full.
    #[error("ring full")]
    Full,
    /// The memory passed to a constructor is not suitably aligned.
    #[error("ring memory is not 64-byte aligned")]
    Misaligned,
}

/// Why a bind request was refused. The device and the simulated transport
/// refuse exactly the same requests, for the same reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    /// The caller speaks another ABI version.
    #[error("ABI version {found} not supported (expected {expected})")]
    AbiVersion {
        /// Version requested.
        found: u32,
        /// Version spoken here.
        expected: u32,
    },
    /// Unknown flags or non-zero reserved fields.
    #[error("unknown flags or non-zero reserved fields in bind request")]
    Reserved,
    /// A ring geometry is out of bounds.
    #[error("{ring} ring: {error}")]
    Ring {
        /// `"u2k"` or `"k2u"`.
        ring: &'static str,
        /// What is wrong with it.
        error: ConfigError,
    },
}

impl BindError {
    /// The errno the device returns for this error (positive).
    pub const fn errno(&self) -> i32 {
        match self {
            BindError::AbiVersion { .. } => crate::abi::errno::EPROTO,
            BindError::Reserved => crate::abi::errno::EINVAL,
            BindError::Ring {
                error: ConfigError::TooBig { .. },
                ..
            } => crate::abi::errno::E2BIG,
            BindError::Ring { .. } => crate::abi::errno::EINVAL,
        }
    }
}
