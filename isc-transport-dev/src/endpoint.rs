//! The user end of a channel on `/dev/isc`.

use crate::error::{DevError, Op, Result};
use crate::sys;
use isc_ring::abi::{BindArgs, BindRequest, BindResponse};
use isc_ring::{ChannelLayout, Consumer, Producer};
use memmap2::{MmapOptions, MmapRaw};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use std::fs::{File, OpenOptions};
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the device node lives unless told otherwise.
pub const DEFAULT_PATH: &str = "/dev/isc";

/// What keeps a bound channel alive: the open descriptor and the mapping of
/// its region. Shared (`Arc`) by the endpoint's producer and consumer views,
/// which point into the mapping; the region goes away when the last of them
/// is dropped.
#[derive(Debug)]
pub struct DevShared {
    // Dropped first: unmap, then close (the kernel frees the region in
    // `release`, after the last mapping and the last descriptor are gone).
    map: MmapRaw,
    file: File,
    path: PathBuf,
    layout: ChannelLayout,
}

impl DevShared {
    /// Asks the kernel to drain the `u2k` ring now: `ISC_IOC_KICK`.
    ///
    /// The kernel delivers every published message to the driver in this
    /// call, in the caller's context, writes each reply and result code back
    /// into its slot, and releases the batch before returning. So **on the
    /// device, completions are ready when `kick` returns**: read them with
    /// [`Producer::completion`] right away; there is no completion doorbell
    /// to wait for. Publish ([`Producer::publish`]) before kicking; the
    /// kernel never looks at `u2k` on its own, so kick after every publish
    /// whatever [`NeedsWake`](isc_ring::NeedsWake) says. KICK is also the
    /// doorbell for room in `k2u`: see [`DevEndpoint::release_posts`].
    ///
    /// Returns the number of messages the kernel processed. Fails with
    /// [`DevError::Corrupt`] if the kernel found the ring broken.
    pub fn kick(&self) -> Result<u32> {
        loop {
            match sys::kick(self.file.as_fd()) {
                // The ring is consistent between messages: a retry drains
                // whatever the interrupted call left.
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(DevError::from_errno(Op::Kick, e, &self.path)),
                Ok(n) => return Ok(n),
            }
        }
    }

    /// Polls the descriptor for `POLLIN`, at most `timeout` (`None`:
    /// forever): `true` if it became readable, `false` on timeout.
    ///
    /// Readable means `k2u` holds slots the consumer has not
    /// [released](Consumer::release), **or** the kernel holds control
    /// messages waiting for room in `k2u`; those are written on the next
    /// KICK. Prefer [`DevEndpoint::wait_posts`] (or the same method of the
    /// split consumer), which releases, kicks when needed and re-checks.
    pub fn wait_posts(&self, timeout: Option<Duration>) -> Result<bool> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let wait = match deadline {
                None => PollTimeout::NONE,
                Some(d) => poll_timeout(d.saturating_duration_since(Instant::now())),
            };
            let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLIN)];
            match nix::poll::poll(&mut fds, wait) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(DevError::from_errno(Op::Poll, e, &self.path)),
                Ok(0) => return Ok(false),
                Ok(_) => {}
            }
            let revents = fds[0].revents().unwrap_or(PollFlags::empty());
            if revents.intersects(PollFlags::POLLERR | PollFlags::POLLHUP) {
                return Err(DevError::Corrupt);
            }
            if revents.contains(PollFlags::POLLNVAL) {
                return Err(DevError::Io(Errno::EBADF));
            }
            return Ok(revents.contains(PollFlags::POLLIN));
        }
    }

    /// The geometry of the channel's region.
    pub fn layout(&self) -> ChannelLayout {
        self.layout
    }

    /// The device node this channel was opened on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Length of the mapped region, in bytes.
    pub fn region_len(&self) -> usize {
        self.map.len()
    }
}

impl AsFd for DevShared {
    /// The channel's descriptor: readable when `k2u` has posts, so it can
    /// join an epoll, mio or tokio loop.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Rounds a duration up to whole milliseconds for `poll` (never turning a
/// short wait into a busy zero-timeout loop), saturating at `i32::MAX` ms.
fn poll_timeout(d: Duration) -> PollTimeout {
    let ms = d.as_nanos().div_ceil(1_000_000);
    PollTimeout::try_from(ms.min(i32::MAX as u128)).unwrap_or(PollTimeout::MAX)
}

/// A ring view ([`Producer`] or [`Consumer`]) that keeps the mapping it
/// points into alive. Dereferences to the view.
#[derive(Debug)]
pub struct Attached<T> {
    view: T,
    shared: Arc<DevShared>,
}

impl<T> Attached<T> {
    /// The channel's descriptor and mapping, for [`DevShared::kick`] and
    /// [`DevShared::wait_posts`].
    pub fn shared(&self) -> &Arc<DevShared> {
        &self.shared
    }
}

impl Attached<Consumer> {
    /// See [`DevEndpoint::release_posts`].
    pub fn release_posts(&mut self) -> Result<()> {
        release_k2u(&mut self.view, &self.shared)
    }

    /// See [`DevEndpoint::wait_posts`].
    pub fn wait_posts(&mut self, timeout: Option<Duration>) -> Result<bool> {
        wait_k2u(&mut self.view, &self.shared, timeout)
    }
}

/// Releases consumed `k2u` slots; if the kernel asked to be told (it holds
/// control messages waiting for room), kicks it so it writes them.
fn release_k2u(rx: &mut Consumer, shared: &DevShared) -> Result<()> {
    if rx.release().is_needed() {
        shared.kick()?;
    }
    Ok(())
}

/// Waits until `rx` has a message to consume; see [`DevEndpoint::wait_posts`].
fn wait_k2u(rx: &mut Consumer, shared: &DevShared, timeout: Option<Duration>) -> Result<bool> {
    let deadline = timeout.map(|t| Instant::now() + t);
    release_k2u(rx, shared)?;
    loop {
        if rx.pending()? > 0 {
            return Ok(true);
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if !shared.wait_posts(left)? {
            return Ok(false);
        }
        if rx.pending()? > 0 {
            return Ok(true);
        }
        // Readable with nothing in the ring: control messages wait for
        // room; a KICK writes them (and drains u2k, which is harmless).
        shared.kick()?;
        if rx.pending()? > 0 {
            return Ok(true);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
        }
        // Still nothing: don't spin on a descriptor that stays readable.
        std::thread::sleep(Duration::from_millis(1));
    }
}

impl<T> Deref for Attached<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.view
    }
}

impl<T> DerefMut for Attached<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.view
    }
}

/// A channel bound on `/dev/isc`: the user produces into `u2k` (calls) and
/// consumes from `k2u` (posts and control messages).
///
/// ```no_run
/// use isc_ring::abi::{BindRequest, RingRequest};
/// use isc_transport_dev::DevEndpoint;
///
/// let ring = RingRequest::new(12, 32);
/// let req = BindRequest::new(u32::from_le_bytes(*b"sam0"), ring, ring);
/// let mut ep = DevEndpoint::bind(None, req)?;
/// // Write register 3 := 7 on the sample driver.
/// let msg: Vec<u8> = [2u32, 3, 7].iter().flat_map(|w| w.to_ne_bytes()).collect();
/// ep.producer().push(&msg, 0)?;
/// let _ = ep.producer().publish(); // the device ignores wake-up requests: always kick
/// ep.kick()?; // synchronous: the reply is in place when this returns
/// let done = ep.producer().completion()?.expect("completed by the kick");
/// assert_eq!(done.rc(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct DevEndpoint {
    tx: Producer,
    rx: Consumer,
    bound_at_bind: bool,
    // Declared last: the views above point into its mapping.
    shared: Arc<DevShared>,
}

impl DevEndpoint {
    /// Opens the device at `path` (default [`DEFAULT_PATH`]) with
    /// `O_RDWR | O_CLOEXEC`, binds the channel `req` describes, maps its
    /// region and attaches to both rings.
    ///
    /// The request is validated with [`ChannelLayout::from_request`] first,
    /// so a bad one fails with [`DevError::Bind`] exactly as on the other
    /// transports, before the device is touched. The kernel's response is
    /// checked against that layout, and both ring headers are validated,
    /// before anything in the region is used.
    pub fn bind(path: Option<&Path>, req: BindRequest) -> Result<Self> {
        let layout = ChannelLayout::from_request(&req)?;
        let path = path.unwrap_or(Path::new(DEFAULT_PATH));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| DevError::from_io(Op::Open, &e, path))?;
        let mut args = BindArgs {
            req,
            resp: BindResponse::default(),
        };
        sys::bind(file.as_fd(), &mut args).map_err(|e| DevError::from_errno(Op::Bind, e, path))?;
        Self::attach(file, path, layout, &args.resp)
    }

    /// Maps the region of a bound `file` and attaches to its rings, after
    /// checking `resp` against `layout`.
    pub(crate) fn attach(
        file: File,
        path: &Path,
        layout: ChannelLayout,
        resp: &BindResponse,
    ) -> Result<Self> {
        let bound_at_bind = check_response(&layout, resp)?;
        let len = layout.region_bytes() as usize;
        let map = MmapOptions::new()
            .len(len)
            .map_raw(&file)
            .map_err(|e| DevError::from_io(Op::Mmap, &e, path))?;
        let base = NonNull::new(map.as_mut_ptr()).ok_or(DevError::Io(Errno::EFAULT))?;
        let (u2k_len, k2u_len) = (
            layout.u2k().ring_bytes() as usize,
            layout.k2u().ring_bytes() as usize,
        );
        // SAFETY: the mapping is `len` = u2k_len + k2u_len bytes long (the
        // `ChannelLayout` sum) and page-aligned; the u2k ring is its first
        // `u2k_len` bytes. It lives in `shared` as long as the views do (the
        // endpoint and every `Attached` hold the Arc). This endpoint creates
        // the only user-side producer of u2k; the kernel is its consumer and
        // is treated as hostile by the view.
        let tx = unsafe { Producer::new(base, u2k_len) }?;
        // SAFETY: k2u starts at `layout.k2u_offset()` = u2k_len, inside the
        // mapping, and spans its remaining `k2u_len` bytes; same lifetime and
        // uniqueness argument as above (one user-side consumer of k2u).
        let rx = unsafe { Consumer::new(base.add(u2k_len), k2u_len) }?;
        // The kernel initialised the headers: they must describe the rings we asked for.
        let u2k_names = ("u2k ring msz", "u2k ring slot_count");
        check_ring(u2k_names, &layout.u2k(), tx.msz(), tx.slot_count())?;
        let k2u_names = ("k2u ring msz", "k2u ring slot_count");
        check_ring(k2u_names, &layout.k2u(), rx.msz(), rx.slot_count())?;
        let shared = Arc::new(DevShared {
            map,
            file,
            path: path.to_path_buf(),
            layout,
        });
        Ok(Self {
            tx,
            rx,
            bound_at_bind,
            shared,
        })
    }

    /// True if a driver had registered the UID when the channel was bound:
    /// then a `BOUND` control message ([`slot_flags::KIND_BOUND`]) is already
    /// queued in `k2u`. Otherwise it arrives when the driver registers.
    ///
    /// [`slot_flags::KIND_BOUND`]: isc_ring::abi::slot_flags::KIND_BOUND
    pub fn bound_at_bind(&self) -> bool {
        self.bound_at_bind
    }

    /// The geometry of the channel's region.
    pub fn layout(&self) -> ChannelLayout {
        self.shared.layout
    }

    /// The producer of the `u2k` ring (calls to the driver).
    pub fn producer(&mut self) -> &mut Producer {
        &mut self.tx
    }

    /// The consumer of the `k2u` ring (posts and control messages).
    pub fn consumer(&mut self) -> &mut Consumer {
        &mut self.rx
    }

    /// The descriptor and mapping, shared.
    pub fn shared(&self) -> &Arc<DevShared> {
        &self.shared
    }

    /// See [`DevShared::kick`]: completions are ready when it returns.
    pub fn kick(&self) -> Result<u32> {
        self.shared.kick()
    }

    /// Waits until `k2u` has a message to consume (a post or a control
    /// message), at most `timeout` (`None`: forever); `true` if there is
    /// one, `false` on timeout.
    ///
    /// Releases consumed slots first ([`DevEndpoint::release_posts`]), then
    /// polls the descriptor; if the device is readable but the ring is
    /// empty, the kernel is holding control messages for want of room, and
    /// a KICK makes it write them.
    pub fn wait_posts(&mut self, timeout: Option<Duration>) -> Result<bool> {
        wait_k2u(&mut self.rx, &self.shared, timeout)
    }

    /// Hands consumed `k2u` slots back to the kernel
    /// ([`Consumer::release`]) and, if the kernel asked to be told (its
    /// control messages wait for room in `k2u`), kicks it. Use this rather
    /// than `release` alone, or act on its [`NeedsWake`](isc_ring::NeedsWake)
    /// with [`DevEndpoint::kick`]: a `BOUND`/`UNBOUND` message stuck behind
    /// a full ring is written only on a KICK.
    pub fn release_posts(&mut self) -> Result<()> {
        release_k2u(&mut self.rx, &self.shared)
    }

    /// Splits the endpoint into its `u2k` producer, its `k2u` consumer and
    /// the shared descriptor, to use them from different threads (calls
    /// under a lock, posts on a dispatcher thread). Each view keeps the
    /// mapping alive.
    pub fn split(self) -> (Attached<Producer>, Attached<Consumer>, Arc<DevShared>) {
        let tx = Attached {
            view: self.tx,
            shared: Arc::clone(&self.shared),
        };
        let rx = Attached {
            view: self.rx,
            shared: Arc::clone(&self.shared),
        };
        (tx, rx, self.shared)
    }
}

impl AsFd for DevEndpoint {
    /// The channel's descriptor (readable when `k2u` has posts).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.as_fd()
    }
}

/// Checks the kernel's bind response against the layout we computed from
/// the request; returns its `bound` flag.
pub(crate) fn check_response(layout: &ChannelLayout, resp: &BindResponse) -> Result<bool> {
    let expect = |what, got: u64, expected: u64| {
        if got == expected {
            Ok(())
        } else {
            Err(DevError::BadResponse {
                what,
                got,
                expected,
            })
        }
    };
    expect(
        "region_size",
        resp.region_size,
        layout.region_bytes().into(),
    )?;
    expect("u2k_offset", resp.u2k_offset, layout.u2k_offset().into())?;
    expect("k2u_offset", resp.k2u_offset, layout.k2u_offset().into())?;
    expect("reserved", resp.reserved.into(), 0)?;
    match resp.bound {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(DevError::BadResponse {
            what: "bound",
            got: other.into(),
            expected: 1,
        }),
    }
}

/// Checks that a ring header the kernel wrote describes the ring we asked for.
fn check_ring(
    names: (&'static str, &'static str),
    want: &isc_ring::RingConfig,
    msz: u32,
    slot_count: u32,
) -> Result<()> {
    for (what, got, expected) in [
        (names.0, msz, want.msz()),
        (names.1, slot_count, want.slot_count()),
    ] {
        if got != expected {
            return Err(DevError::BadResponse {
                what,
                got: got.into(),
                expected: expected.into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use isc_ring::abi::{slot_flags, RingRequest, RING_MAGIC};
    use isc_ring::{BindError, ConfigError, Corruption, RingError};
    use std::io::Write;

    fn req(u2k: (u32, u32), k2u: (u32, u32)) -> BindRequest {
        BindRequest::new(
            u32::from_le_bytes(*b"tst0"),
            RingRequest::new(u2k.0, u2k.1),
            RingRequest::new(k2u.0, k2u.1),
        )
    }

    fn good_response(layout: &ChannelLayout, bound: u32) -> BindResponse {
        BindResponse {
            region_size: layout.region_bytes().into(),
            u2k_offset: 0,
            k2u_offset: layout.k2u_offset().into(),
            bound,
            reserved: 0,
        }
    }

    /// A regular file holding an initialised region, standing in for the
    /// device's memory (mapped shared, like the device's).
    fn region_file(layout: &ChannelLayout, tag: &str) -> (File, PathBuf) {
        let path =
            std::env::temp_dir().join(format!("isc-transport-dev-{}-{tag}", std::process::id()));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let mut bytes = vec![0u8; layout.region_bytes() as usize + 4096];
        // Align the init buffer: ring init needs 64-byte alignment.
        let off = bytes.as_ptr().align_offset(4096);
        let region = &mut bytes[off..off + layout.region_bytes() as usize];
        layout.init(region).unwrap();
        file.write_all(region).unwrap();
        (file, path)
    }

    #[test]
    fn invalid_requests_fail_before_the_device_is_touched() {
        // The path does not exist: a validation error proves no open happened.
        let missing = Path::new("/nonexistent/isc");
        let cases = [
            BindRequest {
                abi_version: 7,
                ..req((12, 8), (12, 8))
            },
            BindRequest {
                flags: 1,
                ..req((12, 8), (12, 8))
            },
            BindRequest {
                reserved: 1,
                ..req((12, 8), (12, 8))
            },
            req((0, 8), (12, 8)),
            req((12, 8), (65537, 8)),
            req((12, 0), (12, 8)),
            req((12, 8), (12, 65537)),
            req((65536, 65536), (12, 8)),
        ];
        for r in cases {
            let expected = ChannelLayout::from_request(&r).unwrap_err();
            assert_eq!(
                DevEndpoint::bind(Some(missing), r).unwrap_err(),
                DevError::Bind(expected),
                "{r:?}"
            );
        }
        assert!(matches!(
            DevEndpoint::bind(Some(missing), req((65536, 65536), (1, 1))),
            Err(DevError::Bind(BindError::Ring {
                ring: "u2k",
                error: ConfigError::TooBig { .. }
            }))
        ));
    }

    #[test]
    fn missing_device_is_a_clear_error() {
        let missing = Path::new("/nonexistent/isc");
        let err = DevEndpoint::bind(Some(missing), req((12, 8), (12, 8))).unwrap_err();
        assert_eq!(
            err,
            DevError::NoDevice {
                path: missing.into()
            }
        );
        assert!(err.to_string().contains("module"));
    }

    #[test]
    fn a_device_without_the_isc_ioctls_is_an_abi_mismatch() {
        // /dev/null answers every ioctl with ENOTTY.
        let err = DevEndpoint::bind(Some(Path::new("/dev/null")), req((12, 8), (12, 8)));
        assert_eq!(err.unwrap_err(), DevError::AbiMismatch);
    }

    #[test]
    fn responses_must_match_the_layout() {
        let layout = ChannelLayout::from_request(&req((64, 16), (12, 8))).unwrap();
        assert_eq!(
            check_response(&layout, &good_response(&layout, 0)),
            Ok(false)
        );
        assert_eq!(
            check_response(&layout, &good_response(&layout, 1)),
            Ok(true)
        );
        let bad = [
            (
                "region_size",
                BindResponse {
                    region_size: 1 << 40,
                    ..good_response(&layout, 0)
                },
            ),
            (
                "u2k_offset",
                BindResponse {
                    u2k_offset: 4096,
                    ..good_response(&layout, 0)
                },
            ),
            (
                "k2u_offset",
                BindResponse {
                    k2u_offset: 0,
                    ..good_response(&layout, 0)
                },
            ),
            ("bound", good_response(&layout, 2)),
            (
                "reserved",
                BindResponse {
                    reserved: 9,
                    ..good_response(&layout, 0)
                },
            ),
        ];
        for (field, resp) in bad {
            match check_response(&layout, &resp) {
                Err(DevError::BadResponse { what, .. }) => assert_eq!(what, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn attaches_to_a_region_and_round_trips() {
        let layout = ChannelLayout::from_request(&req((64, 4), (32, 2))).unwrap();
        let (file, path) = region_file(&layout, "roundtrip");
        let ep = DevEndpoint::attach(file, &path, layout, &good_response(&layout, 1)).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(ep.bound_at_bind());
        assert_eq!(ep.layout(), layout);
        assert_eq!(ep.shared().region_len(), layout.region_bytes() as usize);
        let (mut tx, mut rx, shared) = ep.split();
        assert_eq!((tx.msz(), tx.slot_count()), (64, 4));
        assert_eq!((rx.msz(), rx.slot_count()), (32, 2));
        drop(shared); // the views keep the mapping alive on their own

        // Play the kernel on the same mapping: a second consumer view of u2k.
        let base = NonNull::new(tx.shared().map.as_mut_ptr()).unwrap();
        // SAFETY: the mapping is alive (held by `tx`), and this test is the
        // only other user of the u2k ring, acting as its consumer.
        let mut kernel =
            unsafe { Consumer::new(base, layout.u2k().ring_bytes() as usize) }.unwrap();
        let seq = tx.push(b"ping", 0).unwrap();
        let _ = tx.publish();
        let msg = kernel.peek().unwrap().unwrap();
        let mut buf = [0u8; 64];
        let n = msg.read(&mut buf);
        assert_eq!(&buf[..n], b"ping");
        msg.complete(-5, b"pong").unwrap();
        let _ = kernel.release();
        let done = tx.completion().unwrap().unwrap();
        assert_eq!((done.seq(), done.rc()), (seq, -5));
        assert_ne!(done.flags() & slot_flags::COMPLETED, 0);
        assert!(rx.peek().unwrap().is_none());
        // A regular file is always readable: poll works on the descriptor.
        assert_eq!(rx.shared().wait_posts(Some(Duration::ZERO)), Ok(true));
        // KICK on something that is not the device.
        assert_eq!(rx.shared().kick(), Err(DevError::AbiMismatch));
    }

    #[test]
    fn release_kicks_when_the_kernel_waits_for_room() {
        let layout = ChannelLayout::from_request(&req((16, 2), (16, 2))).unwrap();
        let (file, path) = region_file(&layout, "wake");
        let mut ep = DevEndpoint::attach(file, &path, layout, &good_response(&layout, 0)).unwrap();
        std::fs::remove_file(&path).unwrap();
        // Play the kernel as the producer of k2u.
        let base = NonNull::new(ep.shared().map.as_mut_ptr()).unwrap();
        // SAFETY: the mapping lives as long as `ep`, which outlives this
        // view; the test is k2u's only producer.
        let mut kernel = unsafe {
            Producer::new(
                base.add(layout.k2u_offset() as usize),
                layout.k2u().ring_bytes() as usize,
            )
        }
        .unwrap();
        kernel.push(b"one", 0).unwrap();
        kernel.push(b"two", 0).unwrap();
        let _ = kernel.publish();
        // Something is there: no poll, no kick.
        assert_eq!(ep.wait_posts(Some(Duration::ZERO)), Ok(true));
        // Full, and the kernel has more: it asks to be told about room.
        assert!(kernel.prepare_wait());
        ep.consumer().peek().unwrap().unwrap().complete_rc(0);
        // The release needs a wake-up, i.e. a KICK, which this regular
        // file refuses: proof that it was issued.
        assert_eq!(ep.release_posts(), Err(DevError::AbiMismatch));
        // Without a request, releasing needs no kick.
        ep.consumer().peek().unwrap().unwrap().complete_rc(0);
        assert_eq!(ep.release_posts(), Ok(()));
    }

    #[test]
    fn rejects_rings_the_kernel_initialised_wrongly() {
        let layout = ChannelLayout::from_request(&req((64, 4), (32, 2))).unwrap();
        // Bad magic in k2u.
        let (mut file, path) = region_file(&layout, "magic");
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(layout.k2u_offset().into()))
            .unwrap();
        file.write_all(&0xdead_beef_u32.to_ne_bytes()).unwrap();
        let err = DevEndpoint::attach(file, &path, layout, &good_response(&layout, 0));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            err.unwrap_err(),
            DevError::Ring(RingError::Corrupt(Corruption::BadMagic(0xdead_beef)))
        );
        assert_ne!(RING_MAGIC, 0xdead_beef);

        // Self-consistent headers describing other rings than requested.
        let other = ChannelLayout::from_request(&req((32, 4), (32, 2))).unwrap();
        assert_eq!(other.region_bytes(), layout.region_bytes());
        let (file, path) = region_file(&other, "geometry");
        let err = DevEndpoint::attach(file, &path, layout, &good_response(&layout, 0));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            err.unwrap_err(),
            DevError::BadResponse {
                what: "u2k ring msz",
                got: 32,
                expected: 64
            }
        ));
    }

    #[test]
    fn poll_timeouts_round_up() {
        assert_eq!(i32::from(poll_timeout(Duration::ZERO)), 0);
        assert_eq!(i32::from(poll_timeout(Duration::from_micros(1))), 1);
        assert_eq!(i32::from(poll_timeout(Duration::from_millis(1500))), 1500);
        assert_eq!(i32::from(poll_timeout(Duration::MAX)), i32::MAX);
    }
}
