//! Channel identifiers.

use std::fmt;

/// The 32-bit identifier that binds an application and a driver, usually a
/// fourcc such as `sam0`.
///
/// ```
/// use isc::Uid;
/// let uid = Uid::fourcc(*b"sam0");
/// assert_eq!(uid.raw(), u32::from_le_bytes(*b"sam0"));
/// assert_eq!(uid.to_string(), "sam0");
/// assert_eq!(Uid::new(7).to_string(), "0x00000007");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uid(u32);

impl Uid {
    /// A UID from its raw value.
    pub const fn new(raw: u32) -> Self {
        Self(raw)
    }

    /// A UID from four bytes, read as a little-endian `u32` (the original's convention).
    pub const fn fourcc(code: [u8; 4]) -> Self {
        Self(u32::from_le_bytes(code))
    }

    /// The raw value.
    pub const fn raw(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0.to_le_bytes();
        if b.iter().all(|c| c.is_ascii_graphic()) {
            b.iter().try_for_each(|&c| write!(f, "{}", c as char))
        } else {
            write!(f, "{:#010x}", self.0)
        }
    }
}

impl fmt::Debug for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uid({self})")
    }
}

impl From<u32> for Uid {
    fn from(raw: u32) -> Self {
        Self(raw)
    }
}
