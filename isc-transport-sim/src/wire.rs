//! The bind handshake over a Unix `SOCK_SEQPACKET` socket.
//!
//! 1. The client connects and sends one message: the bytes of a
//!    [`BindRequest`] (32 bytes).
//! 2. The server answers with one message: a [`BindReply`] (48 bytes) and,
//!    on success, [`BIND_FDS`] file descriptors in one `SCM_RIGHTS` control
//!    message, in this order: the region's `memfd`, the driver doorbell, the
//!    user doorbell, the completion doorbell.
//! 3. Nothing else is ever sent. The connection stays open for the life of
//!    the channel: the client closing it (or dying) is its unbind; the server
//!    closing it means the channel is gone.
//!
//! Decoding is pure ([`decode_bind_request`], [`decode_bind_reply`]) so that
//! fuzz targets can drive it; the socket helpers around it close every file
//! descriptor they did not expect.

use crate::error::{SimError, WireError};
use isc_ring::abi::BindRequest;
use isc_ring::abi::BindResponse;
use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `b"ISCS"` as a little-endian `u32`: starts every bind reply.
pub const REPLY_MAGIC: u32 = u32::from_le_bytes(*b"ISCS");
/// Version of this handshake.
pub const WIRE_VERSION: u32 = 1;
/// Number of file descriptors a successful reply carries.
pub const BIND_FDS: usize = 4;
/// Size of an encoded [`BindRequest`].
pub const REQUEST_LEN: usize = core::mem::size_of::<BindRequest>();
/// Size of an encoded [`BindReply`].
pub const REPLY_LEN: usize = core::mem::size_of::<BindReply>();
/// Most descriptors one message can carry on Linux (`SCM_MAX_FD`): the
/// receive buffer has room for all of them so none is lost unclosed.
const SCM_MAX_FD: usize = 253;

/// The server's answer to a bind request.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct BindReply {
    /// [`REPLY_MAGIC`].
    pub magic: u32,
    /// [`WIRE_VERSION`].
    pub version: u32,
    /// 0, or the (positive) errno of the refusal.
    pub status: i32,
    /// Descriptors attached: [`BIND_FDS`] on success, 0 on refusal.
    pub nfds: u32,
    /// The region geometry (zero on refusal).
    pub resp: BindResponse,
}

impl BindReply {
    /// A success reply carrying `resp`.
    pub fn ok(resp: BindResponse) -> Self {
        Self {
            magic: REPLY_MAGIC,
            version: WIRE_VERSION,
            status: 0,
            nfds: BIND_FDS as u32,
            resp,
        }
    }

    /// A refusal with a positive errno.
    pub fn refused(errno: i32) -> Self {
        Self {
            magic: REPLY_MAGIC,
            version: WIRE_VERSION,
            status: errno,
            nfds: 0,
            resp: BindResponse::default(),
        }
    }
}

/// Decodes a bind request: exactly [`REQUEST_LEN`] bytes, any alignment.
/// Its fields are validated later, by `ChannelLayout::from_request`.
pub fn decode_bind_request(bytes: &[u8]) -> Result<BindRequest, WireError> {
    BindRequest::read_from_bytes(bytes).map_err(|_| WireError::Length {
        what: "bind request",
        len: bytes.len(),
        expected: REQUEST_LEN,
    })
}

/// Decodes a bind reply that arrived with `nfds` descriptors: checks the
/// length, magic, version, status and that the descriptor count is exactly
/// what the status implies.
pub fn decode_bind_reply(bytes: &[u8], nfds: usize) -> Result<BindReply, WireError> {
    let reply = BindReply::read_from_bytes(bytes).map_err(|_| WireError::Length {
        what: "bind reply",
        len: bytes.len(),
        expected: REPLY_LEN,
    })?;
    if reply.magic != REPLY_MAGIC {
        return Err(WireError::Magic(reply.magic));
    }
    if reply.version != WIRE_VERSION {
        return Err(WireError::Version {
            found: reply.version,
            expected: WIRE_VERSION,
        });
    }
    if reply.status < 0 {
        return Err(WireError::Status(reply.status));
    }
    let expected = if reply.status == 0 { BIND_FDS } else { 0 };
    if reply.nfds as usize != expected || nfds != expected {
        return Err(WireError::Fds {
            received: nfds,
            expected,
        });
    }
    Ok(reply)
}

/// Sends one message with `fds` attached (`MSG_NOSIGNAL`: a vanished peer is
/// an error, not a `SIGPIPE`).
pub(crate) fn send_msg(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<(), SimError> {
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let rights = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &rights };
    let iov = [IoSlice::new(bytes)];
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) if n == bytes.len() => return Ok(()),
            Ok(_) => return Err(WireError::Truncated.into()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// One received message: its length, the descriptors that came with it
/// (owned: dropping them closes them), and whether anything was cut.
pub(crate) struct Received {
    pub len: usize,
    pub fds: Vec<OwnedFd>,
    pub truncated: bool,
}

/// Receives one message into `buf` (close-on-exec for any descriptors).
/// A zero-length result with no descriptors means the peer closed.
pub(crate) fn recv_msg(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Received, SimError> {
    let mut cmsg = nix::cmsg_space!([RawFd; SCM_MAX_FD]);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => m,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut fds = Vec::new();
        let mut truncated = msg.flags.contains(MsgFlags::MSG_TRUNC);
        match msg.cmsgs() {
            Ok(cmsgs) => {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmRights(list) = c {
                        for fd in list {
                            // SAFETY: the kernel just installed `fd` in our
                            // table for this message; nothing else owns it.
                            fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                        }
                    }
                }
            }
            // Control data cut short: `nix` cannot walk it safely. The buffer
            // has room for SCM_MAX_FD descriptors, so this takes a peer
            // sending several control messages at once.
            Err(_) => truncated = true,
        }
        return Ok(Received {
            len: msg.bytes,
            fds,
            truncated,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use isc_ring::abi::RingRequest;

    fn req() -> BindRequest {
        BindRequest::new(7, RingRequest::new(64, 8), RingRequest::new(32, 4))
    }

    #[test]
    fn request_round_trips_and_rejects_wrong_lengths() {
        let r = req();
        let bytes = r.as_bytes();
        assert_eq!(decode_bind_request(bytes).unwrap(), r);
        assert!(decode_bind_request(&bytes[..31]).is_err());
        let mut long = bytes.to_vec();
        long.push(0);
        assert!(decode_bind_request(&long).is_err());
        assert!(decode_bind_request(&[]).is_err());
        // Any alignment is fine.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(bytes);
        assert_eq!(decode_bind_request(&shifted[1..]).unwrap(), r);
    }

    #[test]
    fn reply_checks() {
        let ok = BindReply::ok(BindResponse {
            region_size: 8192,
            u2k_offset: 0,
            k2u_offset: 4096,
            bound: 1,
            reserved: 0,
        });
        assert_eq!(decode_bind_reply(ok.as_bytes(), BIND_FDS).unwrap(), ok);
        assert_eq!(
            decode_bind_reply(ok.as_bytes(), 0),
            Err(WireError::Fds {
                received: 0,
                expected: BIND_FDS
            })
        );
        let no = BindReply::refused(16);
        assert_eq!(decode_bind_reply(no.as_bytes(), 0).unwrap().status, 16);
        assert!(decode_bind_reply(no.as_bytes(), 1).is_err());
        let mut bad = ok;
        bad.magic = 0;
        assert_eq!(
            decode_bind_reply(bad.as_bytes(), BIND_FDS),
            Err(WireError::Magic(0))
        );
        let mut bad = ok;
        bad.version = 9;
        assert!(matches!(
            decode_bind_reply(bad.as_bytes(), BIND_FDS),
            Err(WireError::Version { .. })
        ));
        let mut bad = no;
        bad.status = -1;
        assert_eq!(
            decode_bind_reply(bad.as_bytes(), 0),
            Err(WireError::Status(-1))
        );
        assert!(decode_bind_reply(&ok.as_bytes()[..40], BIND_FDS).is_err());
    }
}
