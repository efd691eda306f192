//! Errors of the simulated transport.

use isc_ring::{BindError, Corruption, RingError};

pub use isc_ring::Uid;

/// Why a channel was judged broken by the side that reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// The ring's indices, lengths or sequence numbers are inconsistent.
    #[error("{0}")]
    Ring(#[from] Corruption),
    /// A slot carries flags its producer may not set (an unknown kind or bit).
    #[error("slot {seq} carries invalid flags {flags:#x}")]
    SlotFlags {
        /// Sequence number of the slot.
        seq: u32,
        /// Flags read.
        flags: u32,
    },
    /// The region handed over by the peer cannot be attached (wrong size,
    /// unsealed, or a ring header that does not match the bind request).
    #[error("shared region rejected: {0}")]
    Region(&'static str),
    /// A ring view refused to attach to the region.
    #[error("ring rejected: {0}")]
    Attach(RingError),
    /// The completion of a released message could not be found (the ring
    /// reported completions out of order).
    #[error("completion of message {seq} not found")]
    LostCompletion {
        /// Sequence number of the message.
        seq: u32,
    },
}

/// A malformed bind handshake on the Unix socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A message of the wrong length.
    #[error("{what} of {len} bytes, expected {expected}")]
    Length {
        /// Which message.
        what: &'static str,
        /// Bytes received.
        len: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// The message was cut (larger than the receive buffer, or its file
    /// descriptors did not fit).
    #[error("truncated message")]
    Truncated,
    /// The reply does not start with the reply magic.
    #[error("bad reply magic {0:#010x}")]
    Magic(u32),
    /// The reply speaks another version of the handshake.
    #[error("handshake version {found}, expected {expected}")]
    Version {
        /// Version received.
        found: u32,
        /// Version spoken here.
        expected: u32,
    },
    /// A reply status that is neither 0 nor a positive errno.
    #[error("bad status {0}")]
    Status(i32),
    /// The number of file descriptors does not match what the message announces.
    #[error("{received} file descriptors received, {expected} expected")]
    Fds {
        /// Descriptors received (all closed).
        received: usize,
        /// Descriptors expected.
        expected: usize,
    },
    /// The bind response disagrees with the layout of the request.
    #[error("bind response does not match the requested layout")]
    Response,
}

/// Errors of the simulated transport.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The bind request is invalid (the same checks and reasons as the device).
    #[error("bind refused: {0}")]
    Bind(#[from] BindError),
    /// The UID is already bound by another user.
    #[error("UID '{uid}' is already bound by another user")]
    Busy {
        /// The UID.
        uid: Uid,
    },
    /// The server refused the bind with an errno this side does not explain.
    #[error("bind refused by the server: errno {errno}")]
    Refused {
        /// The errno (positive).
        errno: i32,
    },
    /// A driver is already registered for the UID.
    #[error("a driver is already registered for UID '{uid}'")]
    AlreadyRegistered {
        /// The UID.
        uid: Uid,
    },
    /// No driver is registered for the UID.
    #[error("no driver is registered for UID '{uid}'")]
    NotRegistered {
        /// The UID.
        uid: Uid,
    },
    /// No driver is bound: the message was completed with `-ENODEV` and
    /// `NOT_DELIVERED` without reaching a driver.
    #[error("no driver is bound to the channel; the message was not delivered")]
    NotBound,
    /// The other side went away (the host shut down, the server died, or the
    /// channel was torn down after a fault).
    #[error("the channel is closed")]
    Closed,
    /// A blocking operation reached its deadline.
    #[error("timed out")]
    Timeout,
    /// A message is longer than the ring's `msz`.
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
    /// The peer broke the shared region; the channel is unusable.
    #[error("channel corrupt: {0}")]
    Corrupt(#[from] Fault),
    /// The bind handshake over the Unix socket is malformed.
    #[error("bind handshake: {0}")]
    Wire(#[from] WireError),
    /// A system call failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<nix::errno::Errno> for SimError {
    fn from(e: nix::errno::Errno) -> Self {
        SimError::Io(std::io::Error::from(e))
    }
}

impl From<RingError> for SimError {
    fn from(e: RingError) -> Self {
        match e {
            RingError::Corrupt(c) => SimError::Corrupt(Fault::Ring(c)),
            RingError::TooLarge { len, max } => SimError::TooLarge { len, max },
            RingError::Full => SimError::Full,
            RingError::Misaligned => SimError::Corrupt(Fault::Attach(e)),
        }
    }
}

/// Why [`Handle::post`](crate::Handle::post) refused a message. It never blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// The `k2u` ring is full (or a control message is waiting for space);
    /// nothing was overwritten.
    #[error("k2u ring full")]
    Full,
    /// The message is longer than the `k2u` ring's `msz`.
    #[error("post of {len} bytes exceeds msz {max}")]
    TooLarge {
        /// Length given.
        len: usize,
        /// The ring's `msz`.
        max: u32,
    },
    /// The handle's binding is over (the user went away, the driver
    /// unregistered, or the channel was torn down).
    #[error("channel not bound")]
    NotBound,
}

impl PostError {
    /// The errno the kernel API returns for this error (negative, as `isc_post` does).
    pub const fn to_errno(self) -> i32 {
        match self {
            PostError::Full => -isc_ring::abi::errno::EAGAIN,
            PostError::TooLarge { .. } => -isc_ring::abi::errno::E2BIG,
            PostError::NotBound => -isc_ring::abi::errno::ENODEV,
        }
    }
}
