//! The echo call over each pathway, from the user side.
//!
//! Every pathway implements [`Echo`]: one *operation* sends the request and
//! receives the reply and result code of `batch()` calls (1 except for the
//! batched ISC pathways), copying the reply into the caller's buffer.

use crate::netlink::GenlSocket;
use crate::{err, Result};
use isc::{Channel, Transport, Uid};
use isc_benches::pathways::{self as pw, EchoArg, ReplyHdr};
use isc_ring::abi::{slot_flags, BindRequest, RingRequest};
use isc_transport_dev::DevEndpoint;
use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::rc::Rc;
use zerocopy::FromBytes;

mod ioc {
    use isc_benches::pathways::{EchoArg, IOC_MAGIC, IOC_NR_ECHO};
    nix::ioctl_readwrite!(pw_echo, IOC_MAGIC, IOC_NR_ECHO, EchoArg);
}

/// Calls ISC batches per KICK in the batched pathway.
pub const BATCH: usize = 32;

/// One echo pathway.
pub trait Echo {
    /// Calls per operation.
    fn batch(&self) -> usize {
        1
    }

    /// One operation: `batch()` calls of `req`; the (last) reply lands in
    /// `reply[..req.len()]`. Fails unless every call returned rc `req.len()`
    /// with a reply of that length.
    fn op(&mut self, req: &[u8], reply: &mut [u8]) -> Result<()>;
}

/// Checks a result code and reply length against the request's length.
fn check(what: &str, rc: i32, len: usize, want: usize) -> Result<()> {
    if rc != want as i32 || len != want {
        return Err(err(format!(
            "{what}: rc {rc} and {len} reply bytes for a {want}-byte request"
        )));
    }
    Ok(())
}

fn open_rw(path: &str) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| err(format!("open {path}: {e}")))
}

/// One `ioctl(PW_IOC_ECHO)` per call: pointer and length in, reply in place.
pub struct Ioctl {
    file: File,
}

impl Ioctl {
    /// Opens the echo device.
    pub fn open() -> Result<Self> {
        Ok(Self {
            file: open_rw(pw::DEV_ECHO)?,
        })
    }
}

impl Echo for Ioctl {
    fn op(&mut self, req: &[u8], reply: &mut [u8]) -> Result<()> {
        let buf = &mut reply[..req.len()];
        buf.copy_from_slice(req);
        let mut arg = EchoArg {
            data: buf.as_mut_ptr() as u64,
            len: req.len() as u32,
            rc: 0,
        };
        // SAFETY: `arg` points to `buf`, which is valid for writes of
        // `arg.len` bytes and outlives the call; the module writes only the
        // reply (same length) there and the result code into `arg`.
        unsafe { ioc::pw_echo(self.file.as_raw_fd(), &mut arg) }
            .map_err(|e| err(format!("ioctl PW_IOC_ECHO: {e}")))?;
        check("ioctl", arg.rc, req.len(), req.len())
    }
}

/// How a file-based pathway is read and written.
enum FileStyle {
    /// A char device: plain write, then one read returns the whole reply.
    Stream,
    /// A procfs, debugfs or sysfs file: pwrite and pread at offset 0.
    Positioned,
}

/// write(2) of the request, read(2) of header and reply, on one open file.
pub struct FileEcho {
    what: &'static str,
    file: File,
    style: FileStyle,
    buf: Vec<u8>,
}

impl FileEcho {
    fn new(what: &'static str, path: &str, style: FileStyle) -> Result<Self> {
        Ok(Self {
            what,
            file: open_rw(path)?,
            style,
            buf: vec![0; 8 + pw::MAX_MSG],
        })
    }

    /// The echo char device.
    pub fn chardev() -> Result<Self> {
        Self::new("chardev", pw::DEV_ECHO, FileStyle::Stream)
    }

    /// The procfs echo file.
    pub fn procfs() -> Result<Self> {
        Self::new("procfs", pw::PROC_ECHO, FileStyle::Positioned)
    }

    /// The debugfs echo file.
    pub fn debugfs() -> Result<Self> {
        Self::new("debugfs", pw::DEBUGFS_ECHO, FileStyle::Positioned)
    }

    /// The sysfs echo attribute.
    pub fn sysfs() -> Result<Self> {
        Self::new("sysfs", pw::SYSFS_ECHO, FileStyle::Positioned)
    }
}

impl Echo for FileEcho {
    fn op(&mut self, req: &[u8], reply: &mut [u8]) -> Result<()> {
        let want = 8 + req.len();
        let (written, got) = match self.style {
            FileStyle::Stream => (self.file.write(req), self.file.read(&mut self.buf[..want])),
            FileStyle::Positioned => (
                self.file.write_at(req, 0),
                self.file.read_at(&mut self.buf[..want], 0),
            ),
        };
        let what = self.what;
        match written {
            Ok(n) if n == req.len() => {}
            Ok(n) => return Err(err(format!("{what}: wrote {n} of {} bytes", req.len()))),
            Err(e) => return Err(err(format!("{what}: write: {e}"))),
        }
        let got = got.map_err(|e| err(format!("{what}: read: {e}")))?;
        let hdr = ReplyHdr::read_from_prefix(&self.buf[..got])
            .map_err(|_| err(format!("{what}: a {got}-byte reply has no header")))?
            .0;
        check(what, hdr.rc, got - 8, req.len())?;
        check(what, hdr.rc, hdr.len as usize, req.len())?;
        reply[..req.len()].copy_from_slice(&self.buf[8..got]);
        Ok(())
    }
}

/// A generic netlink request (`sendto`) and its reply (`recv`).
pub struct Netlink {
    sock: GenlSocket,
    seq: u32,
    msg: Vec<u8>,
    buf: Vec<u8>,
}

impl Netlink {
    /// Opens a socket and resolves the family.
    pub fn open() -> Result<Self> {
        Ok(Self {
            sock: GenlSocket::open(pw::GENL_NAME)?,
            seq: 1,
            msg: Vec::with_capacity(64 + pw::MAX_MSG),
            buf: vec![0; 8192],
        })
    }
}

impl Echo for Netlink {
    fn op(&mut self, req: &[u8], reply: &mut [u8]) -> Result<()> {
        self.seq = self.seq.wrapping_add(1);
        pw::nl::build_request(
            &mut self.msg,
            self.sock.family,
            pw::cmd::ECHO,
            pw::GENL_VERSION,
            self.seq,
            &[(pw::attr::DATA, req)],
        );
        self.sock.send(&self.msg)?;
        let n = self.sock.recv(&mut self.buf)?;
        let msg = pw::nl::messages(&self.buf[..n])
            .next()
            .ok_or_else(|| err("netlink: malformed reply"))?;
        if let Some(e) = msg.error() {
            return Err(err(format!("netlink: error {e}")));
        }
        if msg.seq != self.seq || msg.ty != self.sock.family {
            return Err(err(format!(
                "netlink: reply {msg:?} to request {}",
                self.seq
            )));
        }
        let (_, attrs) = msg.genl().ok_or_else(|| err("netlink: no genl header"))?;
        let data = attrs.get(pw::attr::DATA).unwrap_or_default();
        let rc = attrs
            .i32(pw::attr::RC)
            .ok_or_else(|| err("netlink: reply without rc"))?;
        check("netlink", rc, data.len(), req.len())?;
        reply[..req.len()].copy_from_slice(data);
        Ok(())
    }
}

/// ISC on the raw device endpoint: `batch` calls published at once, one
/// KICK, then the `batch` completions. The single-call and the batched
/// pathway share one bound channel.
pub struct IscRaw {
    ep: Rc<RefCell<DevEndpoint>>,
    batch: usize,
}

impl IscRaw {
    /// Binds the echo channel with `msz` = `size` and room for [`BATCH`]
    /// calls.
    pub fn bind(size: usize) -> Result<Rc<RefCell<DevEndpoint>>> {
        let req = BindRequest::new(
            pw::UID_ECHO,
            RingRequest::new(size as u32, BATCH as u32),
            RingRequest::new(16, 2),
        );
        let ep = DevEndpoint::bind(None, req).map_err(|e| err(format!("ISC bind: {e}")))?;
        if !ep.bound_at_bind() {
            return Err(err("ISC: the echo driver is not registered"));
        }
        Ok(Rc::new(RefCell::new(ep)))
    }

    /// Calls on `ep`, `batch` per KICK.
    pub fn new(ep: &Rc<RefCell<DevEndpoint>>, batch: usize) -> Self {
        Self {
            ep: Rc::clone(ep),
            batch,
        }
    }
}

impl Echo for IscRaw {
    fn batch(&self) -> usize {
        self.batch
    }

    fn op(&mut self, req: &[u8], reply: &mut [u8]) -> Result<()> {
        let mut ep = self.ep.borrow_mut();
        let tx = ep.producer();
        for _ in 0..self.batch {
            tx.push(req, slot_flags::KIND_MSG)
                .map_err(|e| err(format!("ISC push: {e}")))?;
        }
        // The device ignores wake-up requests: KICK is the doorbell.
        let _ = tx.publish();
        let done = ep.kick().map_err(|e| err(format!("ISC kick: {e}")))?;
        if done as usize != self.batch {
            return Err(err(format!("ISC: KICK handled {done} of {}", self.batch)));
        }
        let tx = ep.producer();
        for _ in 0..self.batch {
            let c = tx
                .completion()
                .map_err(|e| err(format!("ISC completion: {e}")))?
                .ok_or_else(|| err("ISC: a kicked call has no completion"))?;
            check("ISC", c.rc(), c.reply_len(), req.len())?;
            c.read_reply(&mut reply[..req.len()]);
        }
        Ok(())
    }
}

/// ISC through the facade users embed: `call` (one at a time) or
/// `call_batch` of `batch` requests. Both pathways share one channel.
pub struct IscFacade {
    ch: Rc<Channel>,
    batch: usize,
    reqs: Vec<Vec<u8>>,
}

impl IscFacade {
    /// Opens the second echo channel on the device (the first may be bound
    /// by [`IscRaw`] at the same time), with room for [`BATCH`] calls.
    pub fn open(size: usize) -> Result<Rc<Channel>> {
        let ch = Channel::builder(Uid(pw::UID_ECHO2))
            .u2k(size as u32, BATCH as u32)
            .k2u(16, 2)
            .transport(Transport::device())
            .open()
            .map_err(|e| err(format!("ISC facade open: {e}")))?;
        Ok(Rc::new(ch))
    }

    /// Calls on `ch`, `batch` at a time (1: `call`, else `call_batch`).
    pub fn new(ch: &Rc<Channel>, batch: usize) -> Self {
        Self {
            ch: Rc::clone(ch),
            batch,
            reqs: Vec::new(),
        }
    }
}

impl Echo for IscFacade {
    fn batch(&self) -> usize {
        self.batch
    }

    fn op(&mut self, req: &[u8], reply: &mut [u8]) -> Result<()> {
        if self.batch == 1 {
            let r = self
                .ch
                .call(req, &mut reply[..req.len()])
                .map_err(|e| err(format!("ISC facade call: {e}")))?;
            return check("ISC facade", r.rc, r.len, req.len());
        }
        if self.reqs.len() != self.batch || self.reqs[0] != req {
            self.reqs = vec![req.to_vec(); self.batch];
        }
        let reqs: Vec<&[u8]> = self.reqs.iter().map(Vec::as_slice).collect();
        let replies = self
            .ch
            .call_batch(&reqs)
            .map_err(|e| err(format!("ISC facade call_batch: {e}")))?;
        if replies.len() != self.batch {
            return Err(err(format!("call_batch gave {} replies", replies.len())));
        }
        for r in replies {
            let (rc, bytes) = r.map_err(|e| err(format!("ISC facade call_batch: {e}")))?;
            check("ISC facade batch", rc, bytes.len(), req.len())?;
            reply[..req.len()].copy_from_slice(&bytes);
        }
        Ok(())
    }
}

/// Every echo pathway, in table order: (key, label, largest message, why
/// larger ones are not possible).
pub const PATHWAYS: &[(&str, &str, usize, &str)] = &[
    ("ioctl", "ioctl, one per call", pw::MAX_MSG, ""),
    ("chardev", "char device write + read", pw::MAX_MSG, ""),
    ("procfs", "procfs write + read", pw::MAX_MSG, ""),
    (
        "sysfs",
        "sysfs attribute store + show",
        pw::SYSFS_MAX,
        "a sysfs read returns at most PAGE_SIZE - 1 bytes (reply header included)",
    ),
    ("debugfs", "debugfs write + read", pw::MAX_MSG, ""),
    (
        "netlink",
        "generic netlink request + reply",
        pw::MAX_MSG,
        "",
    ),
    ("isc", "ISC, one call per KICK", pw::MAX_MSG, ""),
    ("isc_batch", "ISC, 32 calls per KICK", pw::MAX_MSG, ""),
    ("isc_facade", "ISC facade call()", pw::MAX_MSG, ""),
    (
        "isc_facade_batch",
        "ISC facade call_batch() of 32",
        pw::MAX_MSG,
        "",
    ),
];

/// Opens every pathway that carries `size`-byte messages, in table order:
/// (index in [`PATHWAYS`], pathway).
pub fn open_all(size: usize) -> Result<Vec<(usize, Box<dyn Echo>)>> {
    let mut isc_ep = None;
    let mut facade = None;
    let mut out: Vec<(usize, Box<dyn Echo>)> = Vec::new();
    for (i, &(key, _, max, _)) in PATHWAYS.iter().enumerate() {
        if size > max {
            continue;
        }
        let p: Box<dyn Echo> = match key {
            "isc" | "isc_batch" => {
                if isc_ep.is_none() {
                    isc_ep = Some(IscRaw::bind(size)?);
                }
                let ep = isc_ep.as_ref().ok_or_else(|| err("ISC endpoint"))?;
                Box::new(IscRaw::new(ep, if key == "isc" { 1 } else { BATCH }))
            }
            "isc_facade" | "isc_facade_batch" => {
                if facade.is_none() {
                    facade = Some(IscFacade::open(size)?);
                }
                let ch = facade.as_ref().ok_or_else(|| err("ISC facade channel"))?;
                Box::new(IscFacade::new(
                    ch,
                    if key == "isc_facade" { 1 } else { BATCH },
                ))
            }
            _ => open(key, size)?,
        };
        out.push((i, p));
    }
    Ok(out)
}

/// Opens pathway `key` for `size`-byte messages.
pub fn open(key: &str, size: usize) -> Result<Box<dyn Echo>> {
    Ok(match key {
        "ioctl" => Box::new(Ioctl::open()?),
        "chardev" => Box::new(FileEcho::chardev()?),
        "procfs" => Box::new(FileEcho::procfs()?),
        "sysfs" => Box::new(FileEcho::sysfs()?),
        "debugfs" => Box::new(FileEcho::debugfs()?),
        "netlink" => Box::new(Netlink::open()?),
        "isc" => Box::new(IscRaw::new(&IscRaw::bind(size)?, 1)),
        "isc_batch" => Box::new(IscRaw::new(&IscRaw::bind(size)?, BATCH)),
        "isc_facade" => Box::new(IscFacade::new(&IscFacade::open(size)?, 1)),
        "isc_facade_batch" => Box::new(IscFacade::new(&IscFacade::open(size)?, BATCH)),
        other => return Err(err(format!("unknown pathway {other}"))),
    })
}
