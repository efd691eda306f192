//! Tests against the real `/dev/isc` with the `isc` and `isc_sample` modules
//! loaded. They are `#[ignore]`d because they need the module: run them with
//! `--include-ignored` where it is loaded, as `cargo xtask vm-test` does in
//! its VM (with `--test-threads=1`: some tests unload and reload the sample
//! driver, and all of them share its registers).
//!
//! The sample driver (UID `sam0`) takes 12-byte messages `{id, a, b}`:
//! id 1 reads register `a` (reply `b`), id 2 writes `b` to register `a`; it
//! posts `{0x100, irq, counter}` every 100 ms while bound.

use isc_ring::abi::{
    errno, slot_flags, BindArgs, BindRequest, RingRequest, ABI_VERSION, MAX_MSZ, MAX_SLOTS,
};
use isc_ring::ChannelLayout;
use isc_transport_dev::{sys, DevEndpoint, DevError, DEFAULT_PATH};
use nix::errno::Errno;
use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// The sample driver's UID.
const SAM0: u32 = u32::from_le_bytes(*b"sam0");
/// A UID no driver registers.
const NOBODY: u32 = u32::from_le_bytes(*b"nob0");
const READ: u32 = 1;
const WRITE: u32 = 2;
const IRQ: u32 = 0x100;
const REGISTERS: u32 = 256;
/// Generous upper bound for anything the kernel does asynchronously.
const PATIENCE: Duration = Duration::from_secs(10);

fn request(uid: u32, u2k: (u32, u32), k2u: (u32, u32)) -> BindRequest {
    BindRequest::new(
        uid,
        RingRequest::new(u2k.0, u2k.1),
        RingRequest::new(k2u.0, k2u.1),
    )
}

fn bind(uid: u32) -> DevEndpoint {
    DevEndpoint::bind(None, request(uid, (12, 64), (12, 16)))
        .unwrap_or_else(|e| panic!("bind {uid:#x}: {e}"))
}

fn encode(words: [u32; 3]) -> [u8; 12] {
    let mut out = [0u8; 12];
    for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&w.to_ne_bytes());
    }
    out
}

fn decode(bytes: &[u8]) -> [u32; 3] {
    let mut w = [0u32; 3];
    for (i, chunk) in bytes.chunks_exact(4).take(3).enumerate() {
        w[i] = u32::from_ne_bytes(chunk.try_into().unwrap());
    }
    w
}

/// A completed call: result code, reply words, slot flags.
#[derive(Debug)]
struct Done {
    rc: i32,
    reply: [u32; 3],
    reply_len: usize,
    flags: u32,
}

/// Sends `msgs` as one batch with one KICK; returns their completions.
fn call_batch(ep: &mut DevEndpoint, msgs: &[[u32; 3]]) -> Vec<Done> {
    let mut seqs = Vec::new();
    for m in msgs {
        seqs.push(ep.producer().push(&encode(*m), 0).expect("push"));
    }
    let _ = ep.producer().publish();
    let n = ep.kick().expect("kick");
    assert_eq!(n as usize, msgs.len(), "KICK processed count");
    let mut out = Vec::new();
    for seq in seqs {
        // KICK is synchronous: every completion is there without waiting.
        let done = ep
            .producer()
            .completion()
            .expect("completion")
            .expect("completed when KICK returned");
        assert_eq!(done.seq(), seq);
        let mut buf = [0u8; 12];
        let n = done.read_reply(&mut buf);
        out.push(Done {
            rc: done.rc(),
            reply: decode(&buf[..n]),
            reply_len: done.reply_len(),
            flags: done.flags(),
        });
    }
    out
}

fn call(ep: &mut DevEndpoint, msg: [u32; 3]) -> Done {
    call_batch(ep, &[msg]).pop().unwrap()
}

/// The next k2u message (flags, payload), waiting up to `within`; it is
/// completed and released.
fn next_k2u(ep: &mut DevEndpoint, within: Duration) -> Option<(u32, Vec<u8>)> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(msg) = ep.consumer().peek().expect("k2u peek") {
            let mut buf = vec![0u8; msg.len()];
            msg.read(&mut buf);
            let flags = msg.flags();
            msg.complete_rc(0);
            ep.release_posts().expect("release k2u");
            return Some((flags, buf));
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        if !ep.wait_posts(Some(left)).expect("wait_posts") {
            return None;
        }
    }
}

/// Skips ordinary posts until a control message of `kind` arrives.
fn expect_control(ep: &mut DevEndpoint, kind: u32) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (flags, _) = next_k2u(ep, left)
            .unwrap_or_else(|| panic!("no control message of kind {kind} within {PATIENCE:?}"));
        match flags & slot_flags::KIND_MASK {
            k if k == kind => return,
            slot_flags::KIND_MSG => continue,
            other => panic!("control message of kind {other} while waiting for {kind}"),
        }
    }
}

fn open_raw() -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(DEFAULT_PATH)
        .expect("open /dev/isc")
}

#[test]
#[ignore = "needs /dev/isc with the isc and isc_sample modules (cargo xtask vm-test)"]
fn bind_to_a_registered_driver_queues_bound_first() {
    let mut ep = bind(SAM0);
    assert!(ep.bound_at_bind());
    let (flags, _) = next_k2u(&mut ep, PATIENCE).expect("a message in k2u");
    assert_eq!(flags & slot_flags::KIND_MASK, slot_flags::KIND_BOUND);
}

#[test]
#[ignore = "needs /dev/isc with the isc and isc_sample modules (cargo xtask vm-test)"]
fn closing_unbinds_so_the_uid_can_be_bound_again() {
    for round in 0..5 {
        let mut ep = bind(SAM0);
        assert!(ep.bound_at_bind(), "round {round}");
        let done = call(&mut ep, [WRITE, 10, round]);
        assert_eq!(done.rc, 0);
        let done = call(&mut ep, [READ, 10, 0]);
        assert_eq!(done.reply[2], round);
    }
}

#[test]
#[ignore = "needs /dev/isc with the isc and isc_sample modules (cargo xtask vm-test)"]
fn second_bind_of_a_uid_is_busy() {
    let first = bind(SAM0);
    assert_eq!(
        DevEndpoint::bind(None, request(SAM0, (12, 8), (12, 8))).unwrap_err(),
        DevError::Busy
    );
    // An unregistered UID is exclusive too.
    let nobody = bind(NOBODY);
    assert_eq!(
        DevEndpoint::bind(None, request(NOBODY, (12, 8), (12, 8))).unwrap_err(),
        DevError::Busy
    );
    drop(first);
    drop(nobody);
    bind(SAM0);
}

#[test]
#[ignore = "needs /dev/isc with the isc and isc_sample modules (cargo xtask vm-test)"]
fn second_bind_on_one_descriptor_is_ealready() {
    let f = open_raw();
    let mut args = BindArgs {
        req: request(NOBODY, (12, 8), (12, 8)),
        ..Default::default()
    };
    sys::bind(f.as_fd(), &mut args).expect("first bind");
    let mut again = BindArgs {
        req: request(u32::from_le_bytes(*b"nob1"), (12, 8), (12, 8)),
        ..Default::default()
    };
    assert_eq!(sys::bind(f.as_fd(), &mut again), Err(Errno::EALREADY));
}

#[test]
#[ignore = "needs /dev/isc with the isc and isc_sample modules (cargo xtask vm-test)"]
fn the_kernel_validates_exactly_like_from_request() {
    let good = request(NOBODY, (12, 8), (12, 8));
    let cases = [
        BindRequest {
            abi_version: ABI_VERSION + 1,
            ..good
        },
        BindRequest {
            abi_version: 0,
            ..good
        },
        BindRequest { flags: 1, ..good },
        BindRequest {
            reserved: 0x8000_0000,
            ..good
        },
        request(NOBODY, (0, 8), (12, 8)),
        request(NOBODY, (12, 8), (MAX_MSZ + 1, 8)),
        request(NOBODY, (12, 0), (12, 8)),
        request(NOBODY, (12, 8), (12, MAX_SLOTS + 1)),
        request(NOBODY, (12, 8), (12, u32::MAX)),
        request(NOBODY, (u32::MAX, u32::MAX), (12, 8)),
        request(NOBODY, (MAX_MSZ, MAX_SLOTS), (12, 8)),
        request(NOBODY, (12, 8), (4096, 4096)),
    ];
    for req in cases {
        let expected = ChannelLayout::from_request(&req).expect_err("a bad request");
        // The raw ioctl: the kernel's own validation.
        let f = open_raw();
        let mut args = BindArgs {
            req,
            ..Default::default()
        };
        assert_eq!(
            sys::bind(f.as_fd(), &mut args),
            Err(Errno::from_raw(expected.errno())),
            "{req:?}"
        );
        // The endpoint: the same error as every other transport.
        assert_eq!(
            DevEndpoint::bind(None, req).unwrap_err(),
            DevError::Bind(expected)
        );
    }
    assert_eq!(
        ChannelLayout::from_request(&cases[2]).unwrap_err().errno(),
        errno::EINVAL
    );
    // Limits are inclusive: the largest accepted geometry binds.
    let big = request(NOBODY, (MAX_MSZ, 64), (1, MAX_SLOTS));
    let layout = ChannelLayout::from_request(&big).expect("valid");
    let ep = DevEndpoint::bind(None, big).expect("largest rings bind");
    assert_eq!(ep.layout(), layout);
}

#[test]
#[ignore = "needs /dev/isc with the isc and isc_sample modules (cargo xtask vm-test)"]
fn raw_bind_response_matches_our_layout() {
    let req = request(NOBODY, (100, 5), (3000, 3));
    let layout = ChannelLayout::from_request(&req).unwrap();
    let f = open_raw();
    let mut args = BindArgs {
        req,
        ..Default::default()
    };
    sys::bind(f.as_fd(), &mut args).expect("bind");
    assert_eq!(args.req, req, "the kernel must not rewrite the request");
    assert_eq!(args.resp.region_size, u64::from(layout.region_bytes()));
    assert_eq!(args.resp.u2k_offset, 0);
    assert_eq!(args.resp.k2u_offset, u64::from(layout.k2u_offset()));
    assert_eq!(args.resp.bound, 0);
}

#[test]
#[ignore = "needs /dev/isc with the isc and isc_sample modules (cargo xtask vm-test)"]
fn call_round_trip_through_the_sample_driver() {
    let mut ep = bind(SAM0);
    let w = call(&mut ep, [WRITE, 7, 0xfeed_f00d]);
    assert_eq!(w.rc, 0);
    assert_eq!(w.flags & slot_flags::COMPLETED, slot_flags::COMPLETED);
    assert_eq!(w.flags & slot_flags::NOT_DELIVERED, 0);
    let r = call(&mut ep, [READ, 7, 0]);
    assert_eq!(r.rc, 0);
    assert_eq!(r.reply_len, 12);
    assert_eq!(r.reply, [READ, 7, 0xfeed_f00d]);
    // Out-of-range registers are refused by the driver, not the transport.
    let bad = call(&mut ep, [READ, REGISTERS, 0]);
    assert_eq!(bad.rc, -errno::EINVAL);
    assert_eq!(bad.flags & slot_flags::COMPLETED, slot_flags::COMPLETED);
    let bad = call(&mut ep, [WRITE, u32::MAX, 1]);
    assert_eq!(bad.rc, -errno::EINVAL);
}

#[test]
#[ignore = "needs /dev/isc with the isc and isc_sample modules (cargo xtask vm-test)"]
fn one_kick_completes_a_whole_batch_in_order() {
    let mut ep = bind(SAM0);
    let writes: Vec<[u32; 3]> = (0..48).map(|i| [WRITE, 100 + i, i * 3 + 1]).collect();
    // More than one ring's worth in total, so slots are reused.
    for chunk in writes.chunks(32) {
        for d in call_batch(&mut ep, chunk) {
            assert_eq!(d.rc, 0);
        }
    }
    let reads: Vec<[u32; 3]> = (0..48).map(|i| [READ, 100 + i, 0]).collect();
    for (chunk_no, chunk) in reads.chunks(32).enumerate() {
        for (i, d) in call_batch(&mut ep, chunk).into_iter().enumerate() {
            let reg = (chunk_no * 32 + i) as u32;
            assert_eq!((d.rc, d.reply[1], d.reply[2]), (0, 100 + reg, reg * 3 + 1));
        }
    }
    // A kick with nothing published processes nothing.
    assert_eq!(ep.kick(), Ok(0));
}

#[test]
#[ignore = "needs /dev/isc with the isc and isc_sample modules (cargo xtask vm-test)"]
fn irq_posts_arrive_through_poll_and_the_consumer() {
    let mut ep = bind(SAM0);
    expect_control(&mut ep, slot_flags::KIND_BOUND);
    let mut counters = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while counters.len() < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        let (flags, payload) = next_k2u(&mut ep, left).expect("an irq post within the deadline");
        assert_eq!(flags & slot_flags::KIND_MASK, slot_flags::KIND_MSG);
        assert_eq!(payload.len(), 12);
        let [id, _irq, counter] = decode(&payload);
        assert_eq!(id, IRQ);
        counters.push(counter);
    }
    assert!(
        counters.windows(2).all(|w| w[1] > w[0]),
        "status counters must increase: {counters:?}"
    );
}

#[test]
#[ignore = "needs /dev/isc with the isc and isc_sample modules (cargo xtask vm-test)"]
fn no_posts_means_not_readable() {
    let mut ep = bind(NOBODY);
    assert!(!ep.bound_at_bind());
    assert_eq!(ep.wait_posts(Some(Duration::from_millis(50))), Ok(false));
    assert!(ep.consumer().peek().unwrap().is_none());
    // With no driver, a call completes at once as not delivered.
    let d = call(&mut ep, [READ, 1, 0]);
    assert_eq!(d.rc, -errno::ENODEV);
    assert_eq!(
        d.flags & (slot_flags::COMPLETED | slot_flags::NOT_DELIVERED),
        slot_flags::COMPLETED | slot_flags::NOT_DELIVERED
    );
    assert_eq!(d.reply_len, 0);
}

#[test]
#[ignore = "needs /dev/isc with the isc and isc_sample modules (cargo xtask vm-test)"]
fn ioctls_and_mmap_are_checked() {
    use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
    use std::num::NonZeroUsize;

    let f = open_raw();
    assert_eq!(sys::kick(f.as_fd()), Err(Errno::ENOTCONN));
    let page = NonZeroUsize::new(4096).unwrap();
    let rw = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
    // SAFETY: a fresh mapping chosen by the kernel; unmapped below if created.
    let before = unsafe { mmap(None, page, rw, MapFlags::MAP_SHARED, &f, 0) };
    assert_eq!(before.err(), Some(Errno::ENXIO), "mmap before BIND");

    let req = request(NOBODY, (12, 8), (12, 8));
    let layout = ChannelLayout::from_request(&req).unwrap();
    let mut args = BindArgs {
        req,
        ..Default::default()
    };
    sys::bind(f.as_fd(), &mut args).expect("bind");
    let size = NonZeroUsize::new(layout.region_bytes() as usize).unwrap();
    let too_big = NonZeroUsize::new(size.get() + 4096).unwrap();
    for (what, len, flags, offset) in [
        ("private", size, MapFlags::MAP_PRIVATE, 0),
        ("offset", page, MapFlags::MAP_SHARED, 4096),
        ("oversize", too_big, MapFlags::MAP_SHARED, 0),
    ] {
        // SAFETY: as above; these must all fail.
        let r = unsafe { mmap(None, len, rw, flags, &f, offset) };
        assert_eq!(r.err(), Some(Errno::EINVAL), "{what} mmap");
    }
    // SAFETY: a shared mapping of the bound region, unmapped right after.
    let ok = unsafe { mmap(None, size, rw, MapFlags::MAP_SHARED, &f, 0) }.expect("mmap");
    // SAFETY: `ok` is the mapping just created, of `size` bytes, unused since.
    unsafe { munmap(ok, size.get()) }.expect("munmap");

    // An ioctl number of ours that does not exist, and a foreign one.
    let unknown = nix::request_code_none!(isc_ring::abi::IOC_MAGIC, 0x7f);
    // SAFETY: no argument is passed; the kernel must refuse the request.
    let rc = unsafe { nix::libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&f), unknown as _) };
    assert_eq!((rc, Errno::last()), (-1, Errno::ENOTTY));
    assert_eq!(sys::kick(f.as_fd()), Ok(0));
}

/// Unloads the sample driver for the life of the guard; loads it back on
/// drop, even if the test fails (so later tests still have a driver).
struct SampleUnloaded;

impl SampleUnloaded {
    fn new() -> Self {
        use nix::kmod::{delete_module, DeleteModuleFlags};
        delete_module(c"isc_sample", DeleteModuleFlags::O_NONBLOCK).expect("rmmod isc_sample");
        SampleUnloaded
    }

    fn load() -> Result<(), String> {
        use nix::kmod::{finit_module, ModuleInitFlags};
        let ko = std::env::var("ISC_SAMPLE_KO")
            .map_err(|_| "ISC_SAMPLE_KO must name isc_sample.ko".to_string())?;
        let f = File::open(&ko).map_err(|e| format!("{ko}: {e}"))?;
        finit_module(&f, c"", ModuleInitFlags::empty()).map_err(|e| format!("insmod {ko}: {e}"))
    }

    /// Loads the driver back now, failing the test if that fails.
    fn reload(self) {
        std::mem::forget(self);
        Self::load().expect("reload the sample driver");
    }
}

impl Drop for SampleUnloaded {
    fn drop(&mut self) {
        // Runs while a failed test unwinds: report, never panic here.
        if let Err(e) = Self::load() {
            eprintln!("could not reload the sample driver: {e}");
        }
    }
}

#[test]
#[ignore = "needs /dev/isc with the isc and isc_sample modules (cargo xtask vm-test)"]
fn bound_and_unbound_follow_the_driver_either_order() {
    assert!(
        std::env::var_os("ISC_SAMPLE_KO").is_some(),
        "set ISC_SAMPLE_KO to the path of isc_sample.ko"
    );
    // User first, then the driver goes and comes back.
    let mut ep = bind(SAM0);
    expect_control(&mut ep, slot_flags::KIND_BOUND);
    let unloaded = SampleUnloaded::new();
    expect_control(&mut ep, slot_flags::KIND_UNBOUND);
    let d = call(&mut ep, [READ, 3, 0]);
    assert_eq!(d.rc, -errno::ENODEV);
    assert_ne!(d.flags & slot_flags::NOT_DELIVERED, 0);

    // A second user binds while no driver is there.
    drop(ep);
    let mut late = bind(SAM0);
    assert!(!late.bound_at_bind());
    unloaded.reload();
    expect_control(&mut late, slot_flags::KIND_BOUND);
    let d = call(&mut late, [WRITE, 3, 33]);
    assert_eq!(d.rc, 0);
    assert_eq!(call(&mut late, [READ, 3, 0]).reply[2], 33);
}

#[test]
#[ignore = "needs /dev/isc with the isc and isc_sample modules (cargo xtask vm-test)"]
fn control_messages_survive_a_full_k2u() {
    // A one-slot k2u fills with the first post; UNBOUND must still arrive.
    let mut ep = DevEndpoint::bind(None, request(SAM0, (12, 8), (12, 1))).expect("bind");
    expect_control(&mut ep, slot_flags::KIND_BOUND);
    // Let the driver fill the ring without consuming.
    let deadline = Instant::now() + PATIENCE;
    while ep.consumer().pending().unwrap() == 0 {
        assert!(Instant::now() < deadline, "no post filled k2u");
        std::thread::sleep(Duration::from_millis(20));
    }
    let unloaded = SampleUnloaded::new();
    expect_control(&mut ep, slot_flags::KIND_UNBOUND);
    unloaded.reload();
    expect_control(&mut ep, slot_flags::KIND_BOUND);
}
