//! Channel identifiers.

use core::fmt;
use core::str::FromStr;

/// The 32-bit identifier that binds an application and a driver, usually a
/// fourcc such as `sam0` (its four bytes read as a little-endian `u32`, the
/// original's convention).
///
/// ```
/// use isc_ring::Uid;
/// let uid = Uid::fourcc(*b"sam0");
/// assert_eq!(uid.raw(), u32::from_le_bytes(*b"sam0"));
/// assert_eq!(uid.to_string(), "sam0");
/// assert_eq!(Uid::new(7).to_string(), "0x00000007");
/// assert_eq!("sam0".parse::<Uid>(), Ok(uid));
/// assert_eq!("0x10".parse::<Uid>(), Ok(Uid::new(16)));
/// assert_eq!("16".parse::<Uid>(), Ok(Uid::new(16)));
/// assert!("toolong".parse::<Uid>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uid(pub u32);

impl Uid {
    /// A UID from its raw value.
    pub const fn new(raw: u32) -> Self {
        Self(raw)
    }

    /// A UID from four bytes, read as a little-endian `u32`.
    pub const fn fourcc(code: [u8; 4]) -> Self {
        Self(u32::from_le_bytes(code))
    }

    /// The raw value.
    pub const fn raw(self) -> u32 {
        self.0
    }
}

/// Shown as its fourcc when all four bytes are printable, else in hex.
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

/// The text is not a UID: neither `0x` hex, four characters, nor decimal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a UID: expected a fourcc such as sam0, 0x-prefixed hex or a decimal number")]
pub struct ParseUidError;

/// Parses `0x`-prefixed hex, a four-character fourcc, or a decimal number.
impl FromStr for Uid {
    type Err = ParseUidError;

    fn from_str(s: &str) -> Result<Self, ParseUidError> {
        if let Some(hex) = s.strip_prefix("0x") {
            return u32::from_str_radix(hex, 16)
                .map(Uid)
                .map_err(|_| ParseUidError);
        }
        if let Ok(code) = <[u8; 4]>::try_from(s.as_bytes()) {
            return Ok(Uid::fourcc(code));
        }
        s.parse().map(Uid).map_err(|_| ParseUidError)
    }
}
