//! The one error type of the facade.

use isc_ring::{BindError, Corruption};

impl From<Corruption> for Error {
    fn from(c: Corruption) -> Self {
        Error::Corrupt(c.to_string())
    }
}
use std::time::Duration;

/// Everything that can go wrong on a [`Channel`](crate::Channel).
///
/// Peer behaviour never panics the library: a driver that goes away is
/// [`Error::NotBound`] or [`Error::Closed`], a peer that breaks the shared
/// ring is [`Error::Corrupt`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No driver is bound to the channel's UID: the message was not delivered.
    #[error("no driver is bound to this channel")]
    NotBound,
    /// A message is longer than the channel's message size in that direction.
    #[error("message of {len} bytes exceeds the channel's message size {max}")]
    TooLarge {
        /// Length given.
        len: usize,
        /// The message size (`msz`) of that direction.
        max: u32,
    },
    /// The ring is full (non-blocking sends).
    #[error("queue full")]
    Full,
    /// The channel was closed, or its transport went away.
    #[error("channel closed")]
    Closed,
    /// The peer corrupted the shared ring; the channel is unusable.
    #[error("shared ring corrupted by the peer: {0}")]
    Corrupt(String),
    /// No reply or event within the time allowed.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The channel's sizes were refused (same rules on every transport).
    #[error("invalid channel parameters: {0}")]
    InvalidConfig(#[from] BindError),
    /// The UID is already bound by another user.
    #[error("UID {0} is already bound")]
    Busy(crate::Uid),
    /// The caller may not bind the UID: its driver's access policy refuses
    /// the caller, or no driver has registered it yet and binding it needs
    /// privilege (kernel `EACCES`/`EPERM`).
    #[error("not allowed to bind UID {0}")]
    PermissionDenied(crate::Uid),
    /// The caller's user holds as much channel memory as allowed (kernel
    /// `EDQUOT`, the module parameter `max_user_bytes`).
    #[error("per-user channel memory limit reached")]
    QuotaExceeded,
    /// A typed message does not have the size of its type.
    #[error("message of {len} bytes cannot be read as a {expected}-byte value")]
    BadLength {
        /// Bytes received.
        len: usize,
        /// Size of the type.
        expected: usize,
    },
    /// Listeners are registered: events go to them, not to `recv`.
    #[error("events are being dispatched to listeners")]
    ListenersActive,
    /// No transport was chosen and none could be found (see `Transport::from_env`).
    #[error("no transport: {0}")]
    NoTransport(String),
    /// An operating-system error, with its errno.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias of the facade.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<isc_ring::RingError> for Error {
    fn from(e: isc_ring::RingError) -> Self {
        match e {
            isc_ring::RingError::Corrupt(c) => c.into(),
            isc_ring::RingError::TooLarge { len, max } => Error::TooLarge { len, max },
            isc_ring::RingError::Full => Error::Full,
            isc_ring::RingError::Misaligned => Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "misaligned ring",
            )),
        }
    }
}
