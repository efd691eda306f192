//! The shared-memory ABI: every byte both sides of a channel agree on.
//!
//! These `#[repr(C)]` types are the single Rust description of the layout; the
//! kernel module's uapi header (`driver/include/uapi/isc.h`) is the C one, and a
//! test compiles a C program against that header to prove both agree on every
//! size and offset. All fields are fixed-width, native-endian integers; the
//! cache-line groups are explicitly `align(64)`.
//!
//! A channel's **region** holds two rings, `u2k` (user produces, kernel
//! consumes) then `k2u`, each starting on a [`REGION_ALIGN`] boundary. A ring is
//! a [`RingHeader`] followed, at [`RingInfo::slots_offset`], by `slot_count`
//! slots of [`RingInfo::slot_stride`] bytes, each a [`SlotHeader`] then `msz`
//! payload bytes, packed: the stride is `16 + msz` rounded up to [`SLOT_ALIGN`],
//! so a 64-byte message takes 80 bytes and an 8-byte one 24, not a cache line
//! or two.

use core::mem::{align_of, offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `b"ISCR"` read as a little-endian `u32`: marks an initialised ring header.
pub const RING_MAGIC: u32 = u32::from_le_bytes(*b"ISCR");

/// Version of this layout and of the device protocol. Bumped on any change.
///
/// Version 3 packs slots at a [`SLOT_ALIGN`] of 8 bytes (version 2 rounded
/// strides up to 16, version 1 padded every slot to a multiple of 64).
pub const ABI_VERSION: u32 = 3;

/// Largest payload (`msz`) of one slot, in bytes.
pub const MAX_MSZ: u32 = 64 * 1024;
/// Largest number of slots in one ring.
pub const MAX_SLOTS: u32 = 64 * 1024;
/// Largest size of one ring (header and slots), in bytes.
pub const MAX_RING_BYTES: u32 = 16 * 1024 * 1024;
/// Every ring starts on a multiple of this within the region, and the region
/// length is a multiple of it (the page size on the targets ISC supports).
pub const REGION_ALIGN: u32 = 4096;
/// Slot strides are a multiple of this. Slots are packed (several small
/// ones share a cache line): streaming, the bytes moved per message matter
/// more than the two sides briefly sharing the line at the boundary between
/// what is being written and what is being read. Chosen by benchmark over
/// 8, 16 and 64 (see the README): against 16, it saves 8 bytes a slot when
/// the message size is 8 more than a multiple of 16 (an 8-byte message
/// takes 24 bytes instead of 32) and gives the same slots otherwise.
/// Payloads are 8-byte aligned.
pub const SLOT_ALIGN: u32 = 8;

/// Ring flag: the consumer is (about to be) asleep and wants a doorbell when
/// the producer publishes.
pub const CONSUMER_WAITING: u32 = 1 << 0;
/// Ring flag: the producer found the ring full and wants a doorbell when the
/// consumer releases slots.
pub const PRODUCER_WAITING: u32 = 1 << 1;

/// Slot flags, in [`SlotHeader::flags`]. The ring carries them untouched; the
/// transports use them to tell user messages from control messages.
pub mod slot_flags {
    /// Mask of the message kind.
    pub const KIND_MASK: u32 = 0xff;
    /// An ordinary message (a call in `u2k`, a post in `k2u`).
    pub const KIND_MSG: u32 = 0;
    /// Control message in `k2u`: the driver side bound the channel.
    pub const KIND_BOUND: u32 = 1;
    /// Control message in `k2u`: the driver side went away.
    pub const KIND_UNBOUND: u32 = 2;
    /// Set by the consumer on completion: `rc` and the reply are valid.
    pub const COMPLETED: u32 = 1 << 8;
    /// Set with [`COMPLETED`] when no driver was bound to handle the message:
    /// it was dropped, `rc` is `-ENODEV` and there is no reply.
    pub const NOT_DELIVERED: u32 = 1 << 9;
}

/// Read-mostly ring parameters, written once by [`crate::RingConfig::init`].
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct RingInfo {
    /// [`RING_MAGIC`].
    pub magic: u32,
    /// [`ABI_VERSION`].
    pub abi_version: u32,
    /// Number of slots, a power of two.
    pub slot_count: u32,
    /// Payload capacity of each slot, in bytes.
    pub msz: u32,
    /// Distance between consecutive slots, in bytes.
    pub slot_stride: u32,
    /// Feature bits; none are defined in this version (must be 0).
    pub features: u32,
    /// Offset of slot 0 from the start of the ring header.
    pub slots_offset: u32,
    /// Total bytes of this ring (header and slots), a multiple of [`REGION_ALIGN`].
    pub ring_bytes: u32,
    /// Reserved, zero.
    pub reserved: [u32; 8],
}

/// One shared index (or flag word) alone on its cache line.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct IndexLine {
    /// The value; accessed atomically by both sides.
    pub value: u32,
    /// Padding to a full cache line.
    pub pad: [u32; 15],
}

/// Header at the start of each ring.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct RingHeader {
    /// Parameters, read-only after init.
    pub info: RingInfo,
    /// Free-running index of the next slot the producer will publish. Written only by the producer.
    pub head: IndexLine,
    /// Free-running index of the next slot the consumer will release. Written only by the consumer.
    pub tail: IndexLine,
    /// Wake-up requests: [`CONSUMER_WAITING`], [`PRODUCER_WAITING`].
    pub flags: IndexLine,
}

/// Header of each slot, followed by `msz` payload bytes.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct SlotHeader {
    /// Free-running index of the message, written by the producer (a consistency check).
    pub seq: u32,
    /// Payload length: of the message (producer), then of the reply (consumer).
    pub len: u32,
    /// [`slot_flags`].
    pub flags: u32,
    /// Result code, written by the consumer on completion.
    pub rc: i32,
}

/// Per-direction size request of [`BindRequest`].
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct RingRequest {
    /// Payload bytes per message.
    pub msz: u32,
    /// Queue depth; rounded up to a power of two.
    pub num: u32,
}

impl RingRequest {
    /// A request for `num` messages of `msz` bytes.
    pub const fn new(msz: u32, num: u32) -> Self {
        Self { msz, num }
    }
}

/// Input of `ISC_IOC_BIND`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct BindRequest {
    /// [`ABI_VERSION`].
    pub abi_version: u32,
    /// Channel UID (a fourcc such as `sam0`, little-endian).
    pub uid: u32,
    /// User-to-kernel ring.
    pub u2k: RingRequest,
    /// Kernel-to-user ring.
    pub k2u: RingRequest,
    /// No flags are defined; must be 0.
    pub flags: u32,
    /// Must be 0.
    pub reserved: u32,
}

impl BindRequest {
    /// A request of this ABI version for `uid`, with no flags.
    ///
    /// ```
    /// use isc_ring::abi::{BindRequest, RingRequest, ABI_VERSION};
    /// let req = BindRequest::new(7, RingRequest::new(64, 8), RingRequest::new(12, 4));
    /// assert_eq!((req.abi_version, req.uid, req.k2u.msz, req.flags), (ABI_VERSION, 7, 12, 0));
    /// ```
    pub const fn new(uid: u32, u2k: RingRequest, k2u: RingRequest) -> Self {
        Self {
            abi_version: ABI_VERSION,
            uid,
            u2k,
            k2u,
            flags: 0,
            reserved: 0,
        }
    }
}

/// Output of `ISC_IOC_BIND`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct BindResponse {
    /// Bytes to map at offset 0.
    pub region_size: u64,
    /// Offset of the `u2k` ring in the region.
    pub u2k_offset: u64,
    /// Offset of the `k2u` ring in the region.
    pub k2u_offset: u64,
    /// 1 if the driver side was already registered (a `BOUND` message is queued).
    pub bound: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// The argument of the bind ioctl: request in, response out (`_IOWR`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct BindArgs {
    /// Filled by the caller.
    pub req: BindRequest,
    /// Filled by the kernel.
    pub resp: BindResponse,
}

/// The ioctl "type" byte of `/dev/isc` (unused by other subsystems in
/// `Documentation/userspace-api/ioctl/ioctl-number.rst`; 0xB7 is nsfs).
pub const IOC_MAGIC: u8 = 0xBE;
/// Command number of `ISC_IOC_BIND`.
pub const IOC_NR_BIND: u8 = 1;
/// Command number of `ISC_IOC_KICK` (no argument).
pub const IOC_NR_KICK: u8 = 2;

/// `errno` values the ABI speaks (Linux numbering, the same on every arch ISC supports).
pub mod errno {
    /// No driver bound: a message completed with [`super::slot_flags::NOT_DELIVERED`].
    pub const ENODEV: i32 = 19;
    /// Invalid argument (bad bind request).
    pub const EINVAL: i32 = 22;
    /// UID already bound by another user.
    pub const EBUSY: i32 = 16;
    /// Ring full.
    pub const EAGAIN: i32 = 11;
    /// Message too large / request over the caps.
    pub const E2BIG: i32 = 7;
    /// ABI version mismatch.
    pub const EPROTO: i32 = 71;
}

/// Byte offsets of every ABI field, for cross-checking with the C header.
/// Each entry is `(type.field, offset)`; the sizes are in [`ABI_SIZES`].
pub const ABI_OFFSETS: &[(&str, usize)] = &[
    ("ring_info.magic", offset_of!(RingInfo, magic)),
    ("ring_info.abi_version", offset_of!(RingInfo, abi_version)),
    ("ring_info.slot_count", offset_of!(RingInfo, slot_count)),
    ("ring_info.msz", offset_of!(RingInfo, msz)),
    ("ring_info.slot_stride", offset_of!(RingInfo, slot_stride)),
    ("ring_info.features", offset_of!(RingInfo, features)),
    ("ring_info.slots_offset", offset_of!(RingInfo, slots_offset)),
    ("ring_info.ring_bytes", offset_of!(RingInfo, ring_bytes)),
    ("ring_header.info", offset_of!(RingHeader, info)),
    ("ring_header.head", offset_of!(RingHeader, head)),
    ("ring_header.tail", offset_of!(RingHeader, tail)),
    ("ring_header.flags", offset_of!(RingHeader, flags)),
    ("slot_header.seq", offset_of!(SlotHeader, seq)),
    ("slot_header.len", offset_of!(SlotHeader, len)),
    ("slot_header.flags", offset_of!(SlotHeader, flags)),
    ("slot_header.rc", offset_of!(SlotHeader, rc)),
    (
        "bind_request.abi_version",
        offset_of!(BindRequest, abi_version),
    ),
    ("bind_request.uid", offset_of!(BindRequest, uid)),
    ("bind_request.u2k", offset_of!(BindRequest, u2k)),
    ("bind_request.k2u", offset_of!(BindRequest, k2u)),
    ("bind_request.flags", offset_of!(BindRequest, flags)),
    ("bind_request.reserved", offset_of!(BindRequest, reserved)),
    (
        "bind_response.region_size",
        offset_of!(BindResponse, region_size),
    ),
    (
        "bind_response.u2k_offset",
        offset_of!(BindResponse, u2k_offset),
    ),
    (
        "bind_response.k2u_offset",
        offset_of!(BindResponse, k2u_offset),
    ),
    ("bind_response.bound", offset_of!(BindResponse, bound)),
    ("bind_args.req", offset_of!(BindArgs, req)),
    ("bind_args.resp", offset_of!(BindArgs, resp)),
];

/// Sizes of every ABI type, for cross-checking with the C header.
pub const ABI_SIZES: &[(&str, usize)] = &[
    ("ring_info", size_of::<RingInfo>()),
    ("index_line", size_of::<IndexLine>()),
    ("ring_header", size_of::<RingHeader>()),
    ("slot_header", size_of::<SlotHeader>()),
    ("ring_request", size_of::<RingRequest>()),
    ("bind_request", size_of::<BindRequest>()),
    ("bind_response", size_of::<BindResponse>()),
    ("bind_args", size_of::<BindArgs>()),
];

// The layout, pinned at compile time: changing any of it is an ABI break.
const _: () = {
    assert!(size_of::<RingInfo>() == 64 && align_of::<RingInfo>() == 64);
    assert!(size_of::<IndexLine>() == 64 && align_of::<IndexLine>() == 64);
    assert!(size_of::<RingHeader>() == 256 && align_of::<RingHeader>() == 64);
    assert!(offset_of!(RingHeader, info) == 0);
    assert!(offset_of!(RingHeader, head) == 64);
    assert!(offset_of!(RingHeader, tail) == 128);
    assert!(offset_of!(RingHeader, flags) == 192);
    assert!(offset_of!(RingInfo, magic) == 0);
    assert!(offset_of!(RingInfo, abi_version) == 4);
    assert!(offset_of!(RingInfo, slot_count) == 8);
    assert!(offset_of!(RingInfo, msz) == 12);
    assert!(offset_of!(RingInfo, slot_stride) == 16);
    assert!(offset_of!(RingInfo, features) == 20);
    assert!(offset_of!(RingInfo, slots_offset) == 24);
    assert!(offset_of!(RingInfo, ring_bytes) == 28);
    assert!(size_of::<SlotHeader>() == 16 && align_of::<SlotHeader>() == 4);
    assert!(offset_of!(SlotHeader, seq) == 0);
    assert!(offset_of!(SlotHeader, len) == 4);
    assert!(offset_of!(SlotHeader, flags) == 8);
    assert!(offset_of!(SlotHeader, rc) == 12);
    assert!(size_of::<RingRequest>() == 8);
    assert!(size_of::<BindRequest>() == 32);
    assert!(offset_of!(BindRequest, u2k) == 8);
    assert!(offset_of!(BindRequest, k2u) == 16);
    assert!(offset_of!(BindRequest, flags) == 24);
    assert!(size_of::<BindResponse>() == 32 && align_of::<BindResponse>() == 8);
    assert!(offset_of!(BindResponse, bound) == 24);
    assert!(size_of::<BindArgs>() == 64);
    assert!(offset_of!(BindArgs, resp) == 32);
    assert!(MAX_RING_BYTES % REGION_ALIGN == 0);
    assert!(MAX_SLOTS.is_power_of_two());
    // Every slot, hence every header word, stays at least 8-byte aligned.
    assert!(SLOT_ALIGN.is_power_of_two() && SLOT_ALIGN % 8 == 0);
};

/// Offset of the slots from the start of a ring: right after the header.
pub const SLOTS_OFFSET: u32 = size_of::<RingHeader>() as u32;
/// Byte offset of the `head` index within a ring.
pub const HEAD_OFFSET: usize = offset_of!(RingHeader, head);
/// Byte offset of the `tail` index within a ring.
pub const TAIL_OFFSET: usize = offset_of!(RingHeader, tail);
/// Byte offset of the `flags` word within a ring.
pub const FLAGS_OFFSET: usize = offset_of!(RingHeader, flags);
