//! The raw ioctls of `/dev/isc`, for callers that need to send exactly what
//! they want (the device tests send malformed requests on purpose).
//!
//! [`DevEndpoint`](crate::DevEndpoint) is the safe, validated way in; these
//! functions only wrap the syscalls and return the kernel's errno untouched.

use isc_ring::abi::{BindArgs, IOC_MAGIC, IOC_NR_BIND, IOC_NR_KICK};
use nix::errno::Errno;
use nix::sys::ioctl::ioctl_num_type;
use std::os::fd::{AsRawFd, BorrowedFd};

mod ioctls {
    use isc_ring::abi::{BindArgs, IOC_MAGIC, IOC_NR_BIND, IOC_NR_KICK};

    // `ISC_IOC_BIND = _IOWR(0xBE, 1, struct isc_bind_args)`.
    nix::ioctl_readwrite!(isc_bind, IOC_MAGIC, IOC_NR_BIND, BindArgs);
    // `ISC_IOC_KICK = _IO(0xBE, 2)`.
    nix::ioctl_none!(isc_kick, IOC_MAGIC, IOC_NR_KICK);
}

/// The request code of `ISC_IOC_BIND`, as the C header computes it.
pub const BIND_REQUEST: ioctl_num_type =
    nix::request_code_readwrite!(IOC_MAGIC, IOC_NR_BIND, core::mem::size_of::<BindArgs>());

/// The request code of `ISC_IOC_KICK`.
pub const KICK_REQUEST: ioctl_num_type = nix::request_code_none!(IOC_MAGIC, IOC_NR_KICK);

/// Issues `ISC_IOC_BIND` with `args` (request in, response out), unvalidated.
///
/// On success the kernel has filled `args.resp`.
pub fn bind(fd: BorrowedFd<'_>, args: &mut BindArgs) -> Result<(), Errno> {
    // SAFETY: `fd` is a live descriptor for the duration of the call, and
    // `args` is a valid, exclusively borrowed `BindArgs` whose size is the
    // one encoded in the request code: the kernel reads and writes exactly
    // that many bytes. Any other file type simply fails with ENOTTY.
    unsafe { ioctls::isc_bind(fd.as_raw_fd(), args) }.map(drop)
}

/// Issues `ISC_IOC_KICK`: the kernel drains the `u2k` ring in the caller's
/// context and returns the number of messages it processed.
pub fn kick(fd: BorrowedFd<'_>) -> Result<u32, Errno> {
    // SAFETY: `fd` is live for the call; KICK takes no argument.
    let n = unsafe { ioctls::isc_kick(fd.as_raw_fd()) }?;
    // A negative count never comes back as success; treat it as a protocol break.
    u32::try_from(n).map_err(|_| Errno::EPROTO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_codes_match_the_c_macros() {
        // _IOWR(0xBE, 1, 64 bytes): dir 3 << 30 | size 64 << 16 | 0xBE << 8 | 1.
        assert_eq!(BIND_REQUEST, (3 << 30) | (64 << 16) | (0xBE << 8) | 1);
        // _IO(0xBE, 2).
        assert_eq!(KICK_REQUEST, (0xBE << 8) | 2);
    }
}
