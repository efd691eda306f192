//! A generic netlink socket: resolving a family, requests, multicast.

use crate::{err, Result};
use isc_benches::pathways::nl;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A bound `NETLINK_GENERIC` socket and the family it talks to.
pub struct GenlSocket {
    fd: OwnedFd,
    /// The family's id (its netlink message type).
    pub family: u16,
    /// The family's multicast group id of the last resolved group, if any.
    pub group: Option<u32>,
}

fn os_err(what: &str) -> crate::Error {
    err(format!("{what}: {}", io::Error::last_os_error()))
}

fn setsockopt_int(fd: &OwnedFd, level: i32, opt: i32, val: i32) -> Result<()> {
    // SAFETY: `val` is a live c_int for the duration of the call and its
    // size is passed; the descriptor is open.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&val as *const i32).cast(),
            size_of::<i32>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(os_err(&format!("setsockopt({level}, {opt})")));
    }
    Ok(())
}

impl GenlSocket {
    /// Opens and binds a socket, then resolves `family` (and its
    /// multicast group named [`isc_benches::pathways::GENL_MCGRP`]).
    pub fn open(family: &str) -> Result<Self> {
        // SAFETY: plain socket(2); the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_GENERIC,
            )
        };
        if raw < 0 {
            return Err(os_err("socket(AF_NETLINK)"));
        }
        // SAFETY: `raw` is a new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: an all-zero sockaddr_nl is valid (pid 0: let the kernel
        // choose, no groups).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `addr` is a valid sockaddr_nl of the size passed.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(os_err("bind(AF_NETLINK)"));
        }
        let mut sock = Self {
            fd,
            family: nl::GENL_ID_CTRL,
            group: None,
        };
        let mut name = family.as_bytes().to_vec();
        name.push(0);
        let mut msg = Vec::new();
        nl::build_request(
            &mut msg,
            nl::GENL_ID_CTRL,
            nl::CTRL_CMD_GETFAMILY,
            1,
            1,
            &[(nl::CTRL_ATTR_FAMILY_NAME, &name)],
        );
        sock.send(&msg)?;
        let mut buf = vec![0; 16384];
        let n = sock.recv(&mut buf)?;
        let reply = nl::messages(&buf[..n])
            .next()
            .ok_or_else(|| err("netlink controller: malformed reply"))?;
        if let Some(e) = reply.error() {
            return Err(err(format!(
                "netlink family {family}: {} (is the module loaded?)",
                io::Error::from_raw_os_error(-e)
            )));
        }
        let (_, attrs) = reply
            .genl()
            .ok_or_else(|| err("netlink controller: no genl header"))?;
        let (id, group) = nl::family_and_group(attrs, isc_benches::pathways::GENL_MCGRP)
            .ok_or_else(|| err("netlink controller: no family id"))?;
        sock.family = id;
        sock.group = group;
        Ok(sock)
    }

    /// Joins the family's event group so that a full receive queue is
    /// reported to the sender (`NETLINK_BROADCAST_ERROR`) rather than to us
    /// (`NETLINK_NO_ENOBUFS`).
    pub fn join_events(&self) -> Result<()> {
        let group = self
            .group
            .ok_or_else(|| err("netlink: the family has no event group"))?;
        setsockopt_int(
            &self.fd,
            libc::SOL_NETLINK,
            libc::NETLINK_BROADCAST_ERROR,
            1,
        )?;
        setsockopt_int(&self.fd, libc::SOL_NETLINK, libc::NETLINK_NO_ENOBUFS, 1)?;
        setsockopt_int(
            &self.fd,
            libc::SOL_NETLINK,
            libc::NETLINK_ADD_MEMBERSHIP,
            group as i32,
        )
    }

    /// Sends one message to the kernel.
    pub fn send(&self, msg: &[u8]) -> Result<()> {
        // SAFETY: an all-zero sockaddr_nl addresses the kernel (pid 0).
        let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        to.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `msg` and `to` are valid for the lengths passed.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&to as *const libc::sockaddr_nl).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(os_err("netlink sendto"));
        }
        if r as usize != msg.len() {
            return Err(err(format!("netlink sendto: {r} of {} bytes", msg.len())));
        }
        Ok(())
    }

    /// Receives one datagram (blocking); its length.
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        loop {
            // SAFETY: `buf` is valid for writes of its length.
            let r =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if r >= 0 {
                return Ok(r as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted || crate::timed_out() {
                return Err(err(format!("netlink recv: {e}")));
            }
        }
    }
}
