//! What can go wrong on the device, as a typed error.

use isc_ring::{BindError, RingError};
use nix::errno::Errno;
use std::path::PathBuf;

/// An error of the device transport. Every errno the device returns is mapped
/// to a variant that says what happened; anything unexpected keeps its errno
/// in [`DevError::Io`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DevError {
    /// The device node is missing or has no driver behind it: the `isc`
    /// kernel module is not loaded.
    #[error("{}: no such device (is the isc kernel module loaded?)", path.display())]
    NoDevice {
        /// The path that was opened.
        path: PathBuf,
    },
    /// The bind request is invalid. Checked on the user side with
    /// [`isc_ring::ChannelLayout::from_request`] before the device sees it,
    /// so the error is the same as on every other transport.
    #[error("invalid bind request: {0}")]
    Bind(#[from] BindError),
    /// Another user holds a channel with this UID (`EBUSY`).
    #[error("channel UID is already bound by another user")]
    Busy,
    /// The caller may not bind this UID: the policy its driver declared
    /// refuses the caller (`EACCES`), or no driver has registered it and
    /// binding an unregistered UID needs `CAP_SYS_ADMIN` (`EPERM`).
    #[error("not allowed to bind this channel UID")]
    PermissionDenied,
    /// The caller's user already holds as much channel memory as the
    /// module's `max_user_bytes` allows (`EDQUOT`).
    #[error("per-user channel memory limit reached")]
    QuotaExceeded,
    /// The device speaks another version of the ISC ABI (`EPROTO`), or does
    /// not know the ISC ioctls at all (`ENOTTY`).
    #[error("the device does not speak this ISC ABI version")]
    AbiMismatch,
    /// The device's bind response disagrees with the layout the request
    /// implies; nothing of it was trusted.
    #[error("inconsistent bind response: {what} is {got}, expected {expected}")]
    BadResponse {
        /// The field that is wrong.
        what: &'static str,
        /// The value the device returned.
        got: u64,
        /// The value the request implies.
        expected: u64,
    },
    /// A ring in the mapped region failed validation at attach time, or
    /// the kernel's side of a ring became inconsistent later.
    #[error("shared ring rejected: {0}")]
    Ring(#[from] RingError),
    /// The device found the channel corrupt (`EIO`, or `POLLERR` on poll);
    /// the channel is unusable from now on.
    #[error("the device reports the channel as corrupt")]
    Corrupt,
    /// The descriptor has no bound channel (`ENOTCONN`, `ENXIO` on mmap).
    #[error("no channel is bound on this descriptor")]
    NotBound,
    /// Any other errno.
    #[error("device I/O error: {0}")]
    Io(Errno),
}

/// A specialised `Result` for the device transport.
pub type Result<T, E = DevError> = std::result::Result<T, E>;

/// The device operation an errno came from: the same errno means different
/// things in different calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Open,
    Bind,
    Mmap,
    Kick,
    Poll,
}

impl DevError {
    /// Maps an errno of `op` to its typed error. `path` names the device for
    /// [`DevError::NoDevice`].
    pub(crate) fn from_errno(op: Op, errno: Errno, path: &std::path::Path) -> Self {
        match (op, errno) {
            (Op::Open, Errno::ENOENT | Errno::ENXIO | Errno::ENODEV) => DevError::NoDevice {
                path: path.to_path_buf(),
            },
            (Op::Bind, Errno::EBUSY) => DevError::Busy,
            (Op::Bind, Errno::EACCES | Errno::EPERM) => DevError::PermissionDenied,
            (Op::Bind, Errno::EDQUOT) => DevError::QuotaExceeded,
            (Op::Bind, Errno::EPROTO | Errno::ENOTTY) => DevError::AbiMismatch,
            (Op::Kick, Errno::ENOTTY) => DevError::AbiMismatch,
            (Op::Kick, Errno::EIO) => DevError::Corrupt,
            (Op::Kick, Errno::ENOTCONN) | (Op::Mmap, Errno::ENXIO) => DevError::NotBound,
            (_, e) => DevError::Io(e),
        }
    }

    /// Maps an I/O error of `op` (from `std::fs` or memmap2).
    pub(crate) fn from_io(op: Op, err: &std::io::Error, path: &std::path::Path) -> Self {
        let errno = err.raw_os_error().map_or(Errno::EIO, Errno::from_raw);
        Self::from_errno(op, errno, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn errno_mapping_depends_on_the_operation() {
        let p = Path::new("/dev/isc");
        let map = |op, e| DevError::from_errno(op, e, p);
        assert_eq!(
            map(Op::Open, Errno::ENOENT),
            DevError::NoDevice { path: p.into() }
        );
        assert_eq!(
            map(Op::Open, Errno::ENXIO),
            DevError::NoDevice { path: p.into() }
        );
        assert_eq!(map(Op::Open, Errno::EACCES), DevError::Io(Errno::EACCES));
        assert_eq!(map(Op::Bind, Errno::EBUSY), DevError::Busy);
        assert_eq!(map(Op::Bind, Errno::EPROTO), DevError::AbiMismatch);
        assert_eq!(map(Op::Bind, Errno::ENOTTY), DevError::AbiMismatch);
        assert_eq!(map(Op::Bind, Errno::EFAULT), DevError::Io(Errno::EFAULT));
        assert_eq!(map(Op::Kick, Errno::EIO), DevError::Corrupt);
        assert_eq!(map(Op::Kick, Errno::ENOTCONN), DevError::NotBound);
        assert_eq!(map(Op::Mmap, Errno::ENXIO), DevError::NotBound);
        assert_eq!(map(Op::Mmap, Errno::EINVAL), DevError::Io(Errno::EINVAL));
        assert_eq!(map(Op::Poll, Errno::EIO), DevError::Io(Errno::EIO));
        assert_eq!(map(Op::Bind, Errno::EACCES), DevError::PermissionDenied);
        assert_eq!(map(Op::Bind, Errno::EPERM), DevError::PermissionDenied);
        assert_eq!(map(Op::Bind, Errno::EDQUOT), DevError::QuotaExceeded);
        // EBUSY only means "UID taken" on BIND.
        assert_eq!(map(Op::Kick, Errno::EBUSY), DevError::Io(Errno::EBUSY));
    }

    #[test]
    fn io_errors_keep_their_errno() {
        let p = Path::new("/x");
        let e = std::io::Error::from_raw_os_error(libc_enoent());
        assert_eq!(
            DevError::from_io(Op::Open, &e, p),
            DevError::NoDevice { path: p.into() }
        );
        let e = std::io::Error::other("no errno");
        assert_eq!(DevError::from_io(Op::Mmap, &e, p), DevError::Io(Errno::EIO));
    }

    fn libc_enoent() -> i32 {
        Errno::ENOENT as i32
    }

    #[test]
    fn messages_name_the_cause() {
        let e = DevError::NoDevice {
            path: "/dev/isc".into(),
        };
        assert!(e.to_string().contains("/dev/isc"));
        assert!(e.to_string().contains("module"));
    }
}
