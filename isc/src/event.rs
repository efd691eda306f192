//! Events of the pull API.

use crate::{Error, Result};
use zerocopy::{FromBytes, Immutable, KnownLayout};

/// Something the driver side did, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The driver bound the channel.
    Bound,
    /// The driver went away; calls fail with [`Error::NotBound`] until it
    /// binds again.
    Unbound,
    /// The driver posted a message.
    Message(Message),
}

/// A message posted by the driver, copied out of the shared ring.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    bytes: Vec<u8>,
}

impl Message {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        Self {
            bytes: bytes.to_vec(),
        }
    }

    /// The message bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Reads the message as a `T`; see [`decode`].
    pub fn parse<T: FromBytes + KnownLayout + Immutable>(&self) -> Result<T> {
        decode(&self.bytes)
    }

    /// The message bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Message({} bytes)", self.bytes.len())
    }
}

impl AsRef<[u8]> for Message {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Reads `bytes` as a `T`, which must have exactly `T`'s size (no
/// alignment needed). Any bytes of the right length are a valid `T`
/// (`FromBytes`), so a hostile peer can send wrong values but never
/// invalid ones.
///
/// ```
/// use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
/// #[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Debug, PartialEq)]
/// #[repr(C)]
/// struct Reg { id: u32, a: u32, b: u32 }
/// let reg = Reg { id: 1, a: 2, b: 3 };
/// assert_eq!(isc::decode::<Reg>(reg.as_bytes()).unwrap(), reg);
/// assert!(matches!(isc::decode::<Reg>(&[0; 11]), Err(isc::Error::BadLength { len: 11, expected: 12 })));
/// ```
pub fn decode<T: FromBytes + KnownLayout + Immutable>(bytes: &[u8]) -> Result<T> {
    T::read_from_bytes(bytes).map_err(|_| Error::BadLength {
        len: bytes.len(),
        expected: std::mem::size_of::<T>(),
    })
}
