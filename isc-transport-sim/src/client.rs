//! The user side of the cross-process handshake.

use crate::endpoint::UserEndpoint;
use crate::error::{SimError, Uid, WireError};
use crate::sys::{fired, poll_timeout};
use crate::wire::{self, BIND_FDS};
use isc_ring::abi::{errno, BindRequest};
use isc_ring::ChannelLayout;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags};
use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};
use zerocopy::IntoBytes;

/// How long [`SimClient::connect`] waits for the server's answer.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds to a channel served by another process's
/// [`SimHost::listen`](crate::SimHost::listen).
#[derive(Clone, Copy, Debug)]
pub struct SimClient;

impl SimClient {
    /// Connects to the server socket at `path` and binds with `req`. The
    /// endpoint stays bound until dropped (or this process exits).
    pub fn connect(path: impl AsRef<Path>, req: &BindRequest) -> Result<UserEndpoint, SimError> {
        Self::connect_timeout(path, req, DEFAULT_CONNECT_TIMEOUT)
    }

    /// [`SimClient::connect`] waiting at most `timeout` for the answer
    /// ([`SimError::Timeout`]).
    pub fn connect_timeout(
        path: impl AsRef<Path>,
        req: &BindRequest,
        timeout: Duration,
    ) -> Result<UserEndpoint, SimError> {
        let conn = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let addr = UnixAddr::new(path.as_ref())?;
        loop {
            match connect(conn.as_raw_fd(), &addr) {
                Ok(()) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        wire::send_msg(conn.as_fd(), req.as_bytes(), &[])?;
        wait_readable(&conn, timeout)?;
        let mut buf = [0u8; 2 * wire::REPLY_LEN];
        let got = wire::recv_msg(conn.as_fd(), &mut buf)?;
        if got.len == 0 && got.fds.is_empty() {
            return Err(SimError::Closed);
        }
        if got.truncated {
            return Err(WireError::Truncated.into());
        }
        let reply = wire::decode_bind_reply(&buf[..got.len], got.fds.len())?;
        if reply.status != 0 {
            return Err(refusal(req, reply.status));
        }
        let fds: [OwnedFd; BIND_FDS] = got.fds.try_into().map_err(|v: Vec<OwnedFd>| {
            SimError::Wire(WireError::Fds {
                received: v.len(),
                expected: BIND_FDS,
            })
        })?;
        UserEndpoint::from_parts(req, reply.resp, fds, conn)
    }
}

fn wait_readable(conn: &OwnedFd, timeout: Duration) -> Result<(), SimError> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut fds = [PollFd::new(conn.as_fd(), PollFlags::POLLIN)];
        let left = deadline.saturating_duration_since(Instant::now());
        match poll(&mut fds, poll_timeout(Some(left))) {
            Ok(0) => return Err(SimError::Timeout),
            Ok(_) if fired(&fds[0]) => return Ok(()),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// The error for a refusal with `status`: the same typed error an
/// in-process bind gives when this side can tell why.
fn refusal(req: &BindRequest, status: i32) -> SimError {
    if status == errno::EBUSY {
        return SimError::Busy { uid: Uid(req.uid) };
    }
    match ChannelLayout::from_request(req) {
        Err(e) if e.errno() == status => SimError::Bind(e),
        _ => SimError::Refused { errno: status },
    }
}
