//! The notification over each pathway, from the receiving side.
//!
//! Every pathway implements [`Notify`]: wait until the driver has raised at
//! least one event, then hand over every event that can be had without
//! waiting again (one read of the char device, one sysfs value, one netlink
//! datagram, everything in the ISC ring).

use crate::netlink::GenlSocket;
use crate::{err, Result};
use isc::{Channel, Transport, Uid};
use isc_benches::pathways::{self as pw, Event};
use isc_ring::abi::{slot_flags, BindRequest, RingRequest};
use isc_transport_dev::DevEndpoint;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::FileExt;
use std::time::Duration;
use zerocopy::FromBytes;

/// How long a receiver waits for one event before the run is failed.
pub const WAIT: Duration = Duration::from_secs(10);

/// One notification pathway.
pub trait Notify {
    /// Blocks until at least one event is available; appends every event
    /// available now to `out`, in order.
    fn recv(&mut self, out: &mut Vec<Event>) -> Result<()>;
}

/// Blocking read(2) on the events char device; one read returns every
/// queued record that fits the buffer.
pub struct Chardev {
    file: File,
    buf: Vec<u8>,
}

impl Chardev {
    /// Opens the device and discards events left over from an earlier run.
    pub fn open() -> Result<Self> {
        let mut file =
            File::open(pw::DEV_EVENTS).map_err(|e| err(format!("open {}: {e}", pw::DEV_EVENTS)))?;
        let mut buf = vec![0; pw::EVENT_QUEUE as usize * size_of::<Event>()];
        let fd = file.as_raw_fd();
        let set_nonblock = |on: bool| {
            let flags = if on {
                OFlag::O_NONBLOCK
            } else {
                OFlag::empty()
            };
            fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(|e| err(format!("fcntl: {e}")))
        };
        set_nonblock(true)?;
        loop {
            match file.read(&mut buf) {
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(err(format!("draining {}: {e}", pw::DEV_EVENTS))),
            }
        }
        set_nonblock(false)?;
        Ok(Self { file, buf })
    }
}

impl Notify for Chardev {
    fn recv(&mut self, out: &mut Vec<Event>) -> Result<()> {
        let n = loop {
            match self.file.read(&mut self.buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted && !crate::timed_out() => {}
                Err(e) => return Err(err(format!("chardev read: {e}"))),
            }
        };
        if n == 0 || n % size_of::<Event>() != 0 {
            return Err(err(format!("chardev read returned {n} bytes")));
        }
        for rec in self.buf[..n].chunks_exact(size_of::<Event>()) {
            out.push(Event::read_from_bytes(rec).map_err(|_| err("chardev: bad record"))?);
        }
        Ok(())
    }
}

/// poll(2) for POLLPRI on the sysfs attribute, then re-read it from offset 0
/// (which also re-arms it).
pub struct Sysfs {
    file: File,
    buf: [u8; 64],
    /// Generation of the value read last.
    last: u64,
}

impl Sysfs {
    /// Opens the attribute and reads it once to arm the notification.
    pub fn open() -> Result<Self> {
        let file = File::open(pw::SYSFS_EVENT)
            .map_err(|e| err(format!("open {}: {e}", pw::SYSFS_EVENT)))?;
        let mut s = Self {
            file,
            buf: [0; 64],
            last: 0,
        };
        s.last = s.read_value()?.1;
        Ok(s)
    }

    fn read_value(&mut self) -> Result<(Event, u64)> {
        let n = self
            .file
            .read_at(&mut self.buf, 0)
            .map_err(|e| err(format!("sysfs read: {e}")))?;
        pw::parse_sysfs_event(&self.buf[..n])
            .ok_or_else(|| err(format!("sysfs: bad value {:?}", &self.buf[..n])))
    }
}

impl Notify for Sysfs {
    fn recv(&mut self, out: &mut Vec<Event>) -> Result<()> {
        loop {
            let mut fds = [PollFd::new(
                self.file.as_fd(),
                PollFlags::POLLPRI | PollFlags::POLLERR,
            )];
            let ms = PollTimeout::try_from(WAIT.as_millis() as i32).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, ms) {
                Ok(0) => return Err(err("sysfs: no notification within the wait limit")),
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) if !crate::timed_out() => continue,
                Err(e) => return Err(err(format!("sysfs poll: {e}"))),
            }
            let (ev, gen) = self.read_value()?;
            // A value shown twice (a wake-up for a change already read) is
            // not a new event; its generation says so (seq and t_ns can
            // repeat across runs under a coarse clock).
            if gen != self.last {
                self.last = gen;
                out.push(ev);
                return Ok(());
            }
        }
    }
}

/// A member of the generic netlink multicast group; one recv(2) per event.
pub struct NetlinkMcast {
    sock: GenlSocket,
    buf: Vec<u8>,
}

impl NetlinkMcast {
    /// Opens a socket and joins the event group.
    pub fn open() -> Result<Self> {
        let sock = GenlSocket::open(pw::GENL_NAME)?;
        sock.join_events()?;
        Ok(Self {
            sock,
            buf: vec![0; 4096],
        })
    }
}

impl Notify for NetlinkMcast {
    fn recv(&mut self, out: &mut Vec<Event>) -> Result<()> {
        let n = self.sock.recv(&mut self.buf)?;
        for msg in pw::nl::messages(&self.buf[..n]) {
            if let Some(e) = msg.error() {
                return Err(err(format!("netlink: error {e}")));
            }
            let Some((pw::cmd::EVENT, attrs)) = msg.genl() else {
                return Err(err(format!("netlink: unexpected message {msg:?}")));
            };
            match (attrs.u64(pw::attr::SEQ), attrs.u64(pw::attr::T_NS)) {
                (Some(seq), Some(t_ns)) => out.push(Event { seq, t_ns }),
                _ => return Err(err("netlink: event without seq or time")),
            }
        }
        Ok(())
    }
}

/// Binds the ISC event channel: 256 posts of 16 bytes.
fn event_channel_request() -> BindRequest {
    BindRequest::new(
        pw::UID_EVENT,
        RingRequest::new(16, 2),
        RingRequest::new(size_of::<Event>() as u32, pw::EVENT_QUEUE),
    )
}

/// The raw device endpoint: wait on the descriptor only when the ring is
/// empty, then consume every post in it and release them at once.
pub struct IscRaw {
    ep: DevEndpoint,
}

impl IscRaw {
    /// Binds the event channel.
    pub fn bind() -> Result<Self> {
        let ep = DevEndpoint::bind(None, event_channel_request())
            .map_err(|e| err(format!("ISC bind: {e}")))?;
        if !ep.bound_at_bind() {
            return Err(err("ISC: the event driver is not registered"));
        }
        Ok(Self { ep })
    }
}

impl Notify for IscRaw {
    fn recv(&mut self, out: &mut Vec<Event>) -> Result<()> {
        loop {
            let start = out.len();
            let rx = self.ep.consumer();
            while let Some(msg) = rx.peek().map_err(|e| err(format!("ISC peek: {e}")))? {
                if msg.flags() & slot_flags::KIND_MASK == slot_flags::KIND_MSG {
                    let mut b = [0u8; 16];
                    if msg.read(&mut b) != b.len() {
                        return Err(err(format!("ISC: a {}-byte post", msg.len())));
                    }
                    out.push(Event::read_from_bytes(&b).map_err(|_| err("ISC: bad post"))?);
                }
                msg.complete_rc(0);
            }
            if out.len() > start {
                return self
                    .ep
                    .release_posts()
                    .map_err(|e| err(format!("ISC release: {e}")));
            }
            if !self
                .ep
                .wait_posts(Some(WAIT))
                .map_err(|e| err(format!("ISC wait: {e}")))?
            {
                return Err(err("ISC: no post within the wait limit"));
            }
        }
    }
}

/// The facade users embed: `recv` returns one event at a time.
pub struct IscFacade {
    ch: Channel,
}

impl IscFacade {
    /// Opens the event channel on the device.
    pub fn open() -> Result<Self> {
        let req = event_channel_request();
        let ch = Channel::builder(Uid(pw::UID_EVENT))
            .u2k(req.u2k.msz, req.u2k.num)
            .k2u(req.k2u.msz, req.k2u.num)
            .transport(Transport::device())
            .open()
            .map_err(|e| err(format!("ISC facade open: {e}")))?;
        Ok(Self { ch })
    }
}

impl Notify for IscFacade {
    fn recv(&mut self, out: &mut Vec<Event>) -> Result<()> {
        loop {
            match self.ch.recv(WAIT) {
                Ok(isc::Event::Message(m)) => {
                    let ev = m
                        .parse::<Event>()
                        .map_err(|e| err(format!("ISC facade: {e}")))?;
                    out.push(ev);
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) => return Err(err(format!("ISC facade recv: {e}"))),
            }
        }
    }
}

/// One notification pathway of the table.
#[derive(Clone, Copy, Debug)]
pub struct Pathway {
    /// Key in the results.
    pub key: &'static str,
    /// Label in the table.
    pub label: &'static str,
    /// `PW_PATH_*` of the producer.
    pub path: u32,
    /// Divisor of the event counts (sysfs delivers one event per round
    /// trip, so it gets fewer).
    pub slow: u32,
    /// Events raised at once in the burst runs: what the queue holds with
    /// room to spare (a sysfs value holds one).
    pub burst: u32,
}

const fn pathway(
    key: &'static str,
    label: &'static str,
    path: u32,
    slow: u32,
    burst: u32,
) -> Pathway {
    Pathway {
        key,
        label,
        path,
        slow,
        burst,
    }
}

/// Every notification pathway, in table order.
pub const PATHWAYS: &[Pathway] = &[
    pathway(
        "chardev",
        "char device blocking read",
        pw::path::CHARDEV,
        1,
        128,
    ),
    pathway(
        "sysfs",
        "sysfs_notify + poll + re-read",
        pw::path::SYSFS,
        10,
        1,
    ),
    pathway(
        "netlink",
        "generic netlink multicast",
        pw::path::NETLINK,
        1,
        128,
    ),
    pathway("isc", "ISC post, raw endpoint", pw::path::ISC, 1, 128),
    pathway(
        "isc_facade",
        "ISC post, facade recv()",
        pw::path::ISC,
        1,
        128,
    ),
];

/// Opens the receiving side of pathway `key`.
pub fn open(key: &str) -> Result<Box<dyn Notify>> {
    Ok(match key {
        "chardev" => Box::new(Chardev::open()?),
        "sysfs" => Box::new(Sysfs::open()?),
        "netlink" => Box::new(NetlinkMcast::open()?),
        "isc" => Box::new(IscRaw::bind()?),
        "isc_facade" => Box::new(IscFacade::open()?),
        other => return Err(err(format!("unknown pathway {other}"))),
    })
}
