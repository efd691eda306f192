//! The conformance test driver: a driver whose behaviour tests can steer.
//!
//! Tests of an application (and ISC's own conformance suite) need the driver
//! side to register, unregister, post floods and report what it saw. The test
//! driver does this on command, over a control channel with UID `tctl`, so
//! that the same test code runs against the simulated transport (this
//! module's [`start`] hosts it in a [`SimHost`]) and against the real device
//! (the kernel module `isc_testdrv.ko` speaks the same protocol).
//!
//! # Protocol
//!
//! Control requests and replies are 16 bytes, `{op, uid, arg0, arg1}` as
//! native-endian `u32`s; the result code is 0 or a negative errno.
//!
//! | op | request | reply |
//! |----|---------|-------|
//! | 1 `REGISTER` | `uid`: register an echo driver | |
//! | 2 `UNREGISTER` | `uid` (waits for its running handlers) | |
//! | 3 `POST` | `uid`, `arg0` = count, `arg1` = length (4..=msz) | `arg0` = posted, `arg1` = 1 if it stopped on a full ring |
//! | 4 `STATS` | `uid` | `arg0` = `bound` calls, `arg1` = `unbind` calls |
//!
//! Post `i` of a `POST` carries `i` in its first four bytes, then byte `j`
//! equal to `(i + j) & 0xff`. The echo driver answers a message shorter than
//! 8 bytes with rc = its length and the message unchanged; otherwise the
//! message is `{i32 rc, u32 delay_ms, payload}`: it sleeps `delay_ms` (at
//! most 2 s), reverses the payload in place and returns `rc`.

use crate::sim::{Handle, Message, PostError, SimDriver, SimHost};
use crate::{Channel, Error, Result, Transport, Uid};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// UID of the control channel.
pub const CONTROL_UID: Uid = Uid::fourcc(*b"tctl");

/// Control ops.
pub mod op {
    /// Register an echo driver.
    pub const REGISTER: u32 = 1;
    /// Unregister it.
    pub const UNREGISTER: u32 = 2;
    /// Post a numbered flood.
    pub const POST: u32 = 3;
    /// Report bound/unbind counts.
    pub const STATS: u32 = 4;
}

/// A control request or reply.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct ControlMsg {
    /// One of [`op`].
    pub op: u32,
    /// The UID the op applies to.
    pub uid: u32,
    /// First argument or result.
    pub arg0: u32,
    /// Second argument or result.
    pub arg1: u32,
}

/// Result of a `POST` command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostOutcome {
    /// Messages accepted by the ring.
    pub posted: u32,
    /// True if posting stopped because the ring was full.
    pub stopped_full: bool,
}

/// Counts kept by an echo driver since it registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Times `bound` ran.
    pub bound: u32,
    /// Times `unbind` ran.
    pub unbind: u32,
}

/// The client side of the control channel.
#[derive(Debug)]
pub struct Control {
    channel: Channel,
}

impl Control {
    /// Opens the control channel on `transport`.
    pub fn open(transport: Transport) -> Result<Self> {
        let channel = Channel::builder(CONTROL_UID)
            .u2k(16, 4)
            .k2u(16, 4)
            .transport(transport)
            .open()?;
        Ok(Self { channel })
    }

    fn command(&self, op: u32, uid: Uid, arg0: u32, arg1: u32) -> Result<ControlMsg> {
        let (rc, reply): (i32, ControlMsg) = self.channel.call_as(&ControlMsg {
            op,
            uid: uid.raw(),
            arg0,
            arg1,
        })?;
        if rc < 0 {
            return Err(Error::Io(std::io::Error::from_raw_os_error(-rc)));
        }
        Ok(reply)
    }

    /// Registers an echo driver for `uid`.
    pub fn register(&self, uid: Uid) -> Result<()> {
        self.command(op::REGISTER, uid, 0, 0).map(drop)
    }

    /// Unregisters the echo driver of `uid`.
    pub fn unregister(&self, uid: Uid) -> Result<()> {
        self.command(op::UNREGISTER, uid, 0, 0).map(drop)
    }

    /// Has the driver of `uid` post `count` messages of `len` bytes.
    pub fn post(&self, uid: Uid, count: u32, len: u32) -> Result<PostOutcome> {
        let r = self.command(op::POST, uid, count, len)?;
        Ok(PostOutcome {
            posted: r.arg0,
            stopped_full: r.arg1 != 0,
        })
    }

    /// The bound/unbind counts of the driver of `uid`.
    pub fn stats(&self, uid: Uid) -> Result<Stats> {
        let r = self.command(op::STATS, uid, 0, 0)?;
        Ok(Stats {
            bound: r.arg0,
            unbind: r.arg1,
        })
    }
}

/// The message of post `i` of a `POST` command, `len` bytes long.
pub fn post_pattern(i: u32, len: usize) -> Vec<u8> {
    let mut m = vec![0u8; len.max(4)];
    m[..4].copy_from_slice(&i.to_le_bytes());
    for (j, b) in m.iter_mut().enumerate().skip(4) {
        *b = (i as usize).wrapping_add(j) as u8;
    }
    m.truncate(len.max(4));
    m
}

/// The echo driver's handling of one message (shared by every host).
pub fn echo(msg: &mut [u8]) -> (i32, Duration) {
    if msg.len() < 8 {
        return (msg.len() as i32, Duration::ZERO);
    }
    let rc = i32::from_le_bytes(msg[..4].try_into().unwrap_or_default());
    let delay = u32::from_le_bytes(msg[4..8].try_into().unwrap_or_default()).min(2000);
    msg[8..].reverse();
    (rc, Duration::from_millis(delay.into()))
}

/// An echo driver registered by `REGISTER`.
#[derive(Default)]
struct EchoDriver {
    bound: AtomicU32,
    unbind: AtomicU32,
    handle: Mutex<Option<Handle>>,
}

impl SimDriver for EchoDriver {
    fn bound(&self, handle: Handle) {
        *crate::channel::lock(&self.handle) = Some(handle);
        self.bound.fetch_add(1, Ordering::SeqCst);
    }

    fn unbind(&self) {
        *crate::channel::lock(&self.handle) = None;
        self.unbind.fetch_add(1, Ordering::SeqCst);
    }

    fn got(&self, msg: &mut Message) -> i32 {
        let (rc, delay) = echo(msg.data_mut());
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        rc
    }
}

/// The control driver: registers echo drivers on its host.
struct ControlDriver {
    host: Weak<SimHost>,
    echoes: Mutex<HashMap<u32, Arc<EchoDriver>>>,
}

impl ControlDriver {
    fn run(&self, req: ControlMsg) -> (i32, ControlMsg) {
        const ENOENT: i32 = 2;
        const EEXIST: i32 = 17;
        const EINVAL: i32 = 22;
        const ENOTCONN: i32 = 107;
        let mut reply = req;
        let rc = match req.op {
            op::REGISTER => {
                let Some(host) = self.host.upgrade() else {
                    return (-EINVAL, reply);
                };
                let mut echoes = crate::channel::lock(&self.echoes);
                match echoes.entry(req.uid) {
                    std::collections::hash_map::Entry::Occupied(_) => -EEXIST,
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        let driver = Arc::new(EchoDriver::default());
                        match host.register(req.uid, driver.clone()) {
                            Ok(()) => {
                                slot.insert(driver);
                                0
                            }
                            Err(_) => -EEXIST,
                        }
                    }
                }
            }
            op::UNREGISTER => {
                let Some(host) = self.host.upgrade() else {
                    return (-EINVAL, reply);
                };
                let entry = crate::channel::lock(&self.echoes).remove(&req.uid);
                match entry {
                    // Waits for the echo driver's running handlers.
                    Some(_) => host.unregister(req.uid).map_or(-ENOENT, |()| 0),
                    None => -ENOENT,
                }
            }
            op::POST => {
                let driver = crate::channel::lock(&self.echoes).get(&req.uid).cloned();
                let handle = driver.and_then(|d| crate::channel::lock(&d.handle).clone());
                match handle {
                    None => -ENOTCONN,
                    Some(h) if req.arg1 < 4 || req.arg1 > h.max_post() => -EINVAL,
                    Some(h) => {
                        let (mut posted, mut full) = (0, 0);
                        while posted < req.arg0 {
                            match h.post(&post_pattern(posted, req.arg1 as usize)) {
                                Ok(()) => posted += 1,
                                Err(PostError::Full) => {
                                    full = 1;
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        reply.arg0 = posted;
                        reply.arg1 = full;
                        0
                    }
                }
            }
            op::STATS => match crate::channel::lock(&self.echoes).get(&req.uid) {
                Some(d) => {
                    reply.arg0 = d.bound.load(Ordering::SeqCst);
                    reply.arg1 = d.unbind.load(Ordering::SeqCst);
                    0
                }
                None => -ENOENT,
            },
            _ => -EINVAL,
        };
        (rc, reply)
    }
}

impl SimDriver for ControlDriver {
    fn bound(&self, _: Handle) {}

    fn unbind(&self) {}

    fn got(&self, msg: &mut Message) -> i32 {
        let Ok(req) = ControlMsg::read_from_bytes(msg.data()) else {
            return -22;
        };
        let (rc, reply) = self.run(req);
        match msg.set_reply(reply.as_bytes()) {
            Ok(()) => rc,
            Err(_) => -22,
        }
    }
}

/// The running test driver; dropping it unregisters the control channel
/// and every echo driver it registered.
pub struct TestDriver {
    host: Arc<SimHost>,
    driver: Arc<ControlDriver>,
}

impl Drop for TestDriver {
    fn drop(&mut self) {
        let _ = self.host.unregister(CONTROL_UID.raw());
        let echoes = std::mem::take(&mut *crate::channel::lock(&self.driver.echoes));
        for uid in echoes.keys() {
            let _ = self.host.unregister(*uid);
        }
    }
}

impl std::fmt::Debug for TestDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestDriver")
    }
}

/// Registers the control driver (UID `tctl`) on `host`.
pub fn start(host: &Arc<SimHost>) -> Result<TestDriver> {
    let driver = Arc::new(ControlDriver {
        host: Arc::downgrade(host),
        echoes: Mutex::default(),
    });
    host.register(CONTROL_UID.raw(), driver.clone())
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
    Ok(TestDriver {
        host: Arc::clone(host),
        driver,
    })
}

/// An echo request: `{rc, delay_ms, payload}` (see the protocol above).
pub fn echo_request(rc: i32, delay_ms: u32, payload: &[u8]) -> Vec<u8> {
    let mut req = Vec::with_capacity(8 + payload.len());
    req.extend_from_slice(&rc.to_le_bytes());
    req.extend_from_slice(&delay_ms.to_le_bytes());
    req.extend_from_slice(payload);
    req
}

/// The echo driver's reply to a request of at least 8 bytes: the header
/// kept, the payload reversed.
pub fn echo_reply(req: &[u8]) -> Vec<u8> {
    let mut reply = req.to_vec();
    if reply.len() >= 8 {
        reply[8..].reverse();
    }
    reply
}

/// The transport a test suite runs on and its test driver's control
/// channel, shared by every test of the process.
///
/// [`harness`] picks the transport from `ISC_TRANSPORT`: `dev` (or
/// `device`) is `/dev/isc`, where `isc_testdrv.ko` must be loaded; anything
/// else is a [`SimHost`] in this process with the test driver started on it.
pub struct Harness {
    /// The transport under test.
    pub transport: Transport,
    /// The test driver's control channel.
    pub control: Control,
    /// The in-process test driver (sim only), kept for the whole run.
    _driver: Option<TestDriver>,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("transport", &self.transport)
            .field("in_process_driver", &self._driver.is_some())
            .finish()
    }
}

/// The process's [`Harness`], set up on first use.
///
/// # Panics
/// If the transport or the control channel cannot be opened: a test suite
/// without its driver cannot run, and says why.
pub fn harness() -> &'static Harness {
    static HARNESS: std::sync::OnceLock<Harness> = std::sync::OnceLock::new();
    HARNESS.get_or_init(|| {
        let (transport, driver) = match std::env::var("ISC_TRANSPORT").as_deref() {
            Ok("dev") | Ok("device") => (Transport::device(), None),
            _ => {
                let host = Arc::new(SimHost::new().expect("start a simulated host"));
                let driver = start(&host).expect("start the test driver");
                (Transport::sim(&host), Some(driver))
            }
        };
        let control =
            Control::open(transport.clone()).expect("open the test driver's control channel");
        Harness {
            transport,
            control,
            _driver: driver,
        }
    })
}
