//! The host's service threads: a callback that blocks holds up only its own
//! channel, the threads started while callbacks block are capped and leave
//! again, one channel's callbacks never overlap whichever thread runs them,
//! and a thousand idle channels are all served by a few threads.

mod common;

use common::*;
use isc_transport_sim::sample::EchoDriver;
use isc_transport_sim::{
    Event, Handle, Message, SimDriver, SimHost, DEFAULT_SPIN, MAX_EXTRA_SERVICE_THREADS,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A gate that callbacks wait at (at most `LONG`, so a broken test fails
/// instead of hanging), counting who is waiting.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
    waiting: AtomicUsize,
}

impl Gate {
    /// Waits for the gate; false if it stayed shut for twice `LONG` (longer
    /// than any wait of the test, so the test's own deadline fails first).
    fn pass(&self) -> bool {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let open = self.open.lock().unwrap();
        let (open, _) = self
            .cv
            .wait_timeout_while(open, 2 * LONG, |o| !*o)
            .unwrap_or_else(|e| e.into_inner());
        let passed = *open;
        drop(open);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        passed
    }

    fn open(&self) {
        *self.open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }
}

/// Opens the gate when dropped, so a failing test does not leave callbacks
/// waiting at it.
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

#[test]
fn a_blocked_callback_holds_up_only_its_own_channel() {
    // One service thread: before another starts, channel A's blocked `got`
    // occupies every thread the host has.
    let host = SimHost::with_threads(DEFAULT_SPIN, 1).unwrap();
    let (ua, ub, uc) = (uid(b"blkA"), uid(b"blkB"), uid(b"blkC"));
    let gate = Arc::new(Gate::default());
    let a_passed = Arc::new(AtomicBool::new(false));
    let (g, p) = (Arc::clone(&gate), Arc::clone(&a_passed));
    let a = Arc::new(TestDriver::new().on_got(move |_, msg| {
        if msg.data() == b"block" {
            p.store(g.pass(), Ordering::SeqCst);
            return Some(0);
        }
        None
    }));
    host.register(ua, a.clone()).unwrap();
    host.register(ub, Arc::new(EchoDriver::new())).unwrap();
    host.register(uc, Arc::new(EchoDriver::new())).unwrap();
    let mut epa = host.bind(&req(ua, 32, 4)).unwrap();
    let mut epb = host.bind(&req(ub, 32, 4)).unwrap();
    assert_eq!(next_event(&mut epa).0, Event::Bound);
    assert_eq!(next_event(&mut epb).0, Event::Bound);
    expect_post(&mut epb, b"hello");

    // A sends "block" and then "after" without waiting: the second must not
    // reach the driver while the first is still in `got`.
    // Declared after the endpoints: dropped (opened) before them.
    let _open = OpenOnDrop(Arc::clone(&gate));
    let (done_tx, done_rx) = mpsc::channel();
    let caller = std::thread::spawn(move || {
        let seq = epa.tx().send(b"block").unwrap();
        epa.tx().send(b"after").unwrap();
        epa.tx().publish().unwrap();
        let released = epa.tx().wait_released(seq + 1, T).unwrap();
        done_tx.send(()).unwrap();
        (released, epa)
    });
    assert!(gate_waiting(&gate, 1), "A's got never ran");

    // B, bound and asleep before A blocked, is still served.
    let mut buf = [0u8; 32];
    let rb = epb.call(b"abc", &mut buf, T);
    // C binds while A is blocked: it gets its `bound` and its calls served.
    let epc = host.bind(&req(uc, 32, 4)).map(|mut epc| {
        let bound = next_event(&mut epc).0;
        let call = epc
            .call(b"xyz", &mut buf, T)
            .map(|r| (r.rc, buf[..3].to_vec()));
        (bound, call, epc)
    });
    let a_still_blocked = a.count(&Ev::Got(b"after".to_vec())) == 0;
    gate.open();

    let r = rb.expect("B's call while A's got was blocked");
    assert_eq!(r.rc, 3);
    let (bound, call, _epc) = epc.unwrap();
    assert_eq!(bound, Event::Bound);
    assert_eq!(call.unwrap(), (3, b"zyx".to_vec()));
    assert!(a_still_blocked, "A's next message overtook its blocked got");
    done_rx.recv_timeout(LONG).expect("A's messages complete");
    let (released, _epa) = caller.join().unwrap();
    assert!(released);
    assert!(
        a_passed.load(Ordering::SeqCst),
        "A's got waited out its gate"
    );
    // Both of A's messages were delivered, in order.
    let gots: Vec<Ev> = a
        .log()
        .into_iter()
        .filter(|e| matches!(e, Ev::Got(_)))
        .collect();
    assert_eq!(
        gots,
        [Ev::Got(b"block".to_vec()), Ev::Got(b"after".to_vec())]
    );
    assert!(host.service_threads() >= 2);
}

fn gate_waiting(gate: &Gate, n: usize) -> bool {
    eventually(|| gate.waiting.load(Ordering::SeqCst) >= n)
}

#[test]
fn threads_started_for_blocked_callbacks_are_capped_and_leave() {
    let host = SimHost::with_threads(DEFAULT_SPIN, 1).unwrap();
    let gate = Arc::new(Gate::default());
    let passed = Arc::new(AtomicUsize::new(0));
    let cap = 1 + MAX_EXTRA_SERVICE_THREADS;
    let n = cap + 3;
    let mut eps = Vec::new();
    for i in 0..n {
        let u = 0x7000_0000 | i as u32;
        let (g, p) = (Arc::clone(&gate), Arc::clone(&passed));
        let drv = TestDriver::new().on_got(move |_, _| {
            if g.pass() {
                p.fetch_add(1, Ordering::SeqCst);
            }
            Some(0)
        });
        host.register(u, Arc::new(drv)).unwrap();
        let mut ep = host.bind(&req(u, 16, 2)).unwrap();
        assert_eq!(next_event(&mut ep).0, Event::Bound);
        eps.push(ep);
    }
    // Declared after the endpoints: dropped (opened) before them.
    let _open = OpenOnDrop(Arc::clone(&gate));
    for ep in &mut eps {
        ep.tx().send(b"m").unwrap();
        ep.tx().publish().unwrap();
    }
    // Threads start until the cap; then every thread is in a callback and
    // the last channels wait.
    assert!(
        gate_waiting(&gate, cap),
        "only {} callbacks running with {} threads",
        gate.waiting.load(Ordering::SeqCst),
        host.service_threads()
    );
    assert_eq!(host.service_threads(), cap);
    // Give the manager its chance to exceed the cap (it must not).
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(host.service_threads(), cap);
    assert_eq!(gate.waiting.load(Ordering::SeqCst), cap);
    gate.open();
    assert!(eventually(|| passed.load(Ordering::SeqCst) == n));
    // The extra threads leave once there is nothing to do.
    assert!(
        eventually(|| host.service_threads() == 1),
        "{} threads left",
        host.service_threads()
    );
    // The one left still serves every channel.
    let mut buf = [0u8; 16];
    for ep in &mut eps {
        assert_eq!(ep.call(b"x", &mut buf, T).unwrap().rc, 0);
    }
}

/// Records overlapping callbacks and out-of-order messages of one channel.
#[derive(Default)]
struct OrderDriver {
    inside: AtomicBool,
    overlaps: AtomicUsize,
    bound: AtomicBool,
    next: Mutex<u32>,
    out_of_order: AtomicUsize,
    got: AtomicUsize,
    unbinds: AtomicUsize,
}

impl OrderDriver {
    fn enter(&self) {
        if self.inside.swap(true, Ordering::SeqCst) {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn leave(&self) {
        self.inside.store(false, Ordering::SeqCst);
    }
}

impl SimDriver for OrderDriver {
    fn bound(&self, _: Handle) {
        self.enter();
        std::thread::sleep(Duration::from_millis(2));
        self.bound.store(true, Ordering::SeqCst);
        self.leave();
    }

    fn unbind(&self) {
        self.enter();
        self.unbinds.fetch_add(1, Ordering::SeqCst);
        self.leave();
    }

    fn got(&self, msg: &mut Message) -> i32 {
        self.enter();
        if !self.bound.load(Ordering::SeqCst) {
            self.out_of_order.fetch_add(1, Ordering::SeqCst);
        }
        let n = u32::from_le_bytes(msg.data().try_into().unwrap_or_default());
        {
            let mut next = self.next.lock().unwrap();
            if n != *next {
                self.out_of_order.fetch_add(1, Ordering::SeqCst);
            }
            *next = n + 1;
        }
        // Every few messages, sleep long enough for the host to start
        // another thread, so the channel moves between threads.
        if n % 64 == 0 {
            std::thread::sleep(Duration::from_millis(12));
        }
        self.got.fetch_add(1, Ordering::SeqCst);
        self.leave();
        0
    }
}

#[test]
fn one_channels_callbacks_never_overlap_and_keep_their_order() {
    const CHANNELS: usize = 6;
    const MESSAGES: u32 = 600;
    let host = SimHost::with_threads(DEFAULT_SPIN, 2).unwrap();
    let drivers: Vec<Arc<OrderDriver>> = (0..CHANNELS).map(|_| Arc::default()).collect();
    let mut users = Vec::new();
    for (i, d) in drivers.iter().enumerate() {
        let u = 0x7100_0000 | i as u32;
        host.register(u, Arc::clone(d)).unwrap();
        let mut ep = host.bind(&req(u, 8, 8)).unwrap();
        users.push(std::thread::spawn(move || {
            assert_eq!(next_event(&mut ep).0, Event::Bound);
            let mut last = 0;
            for n in 0..MESSAGES {
                loop {
                    match ep.tx().send(&n.to_le_bytes()) {
                        Ok(seq) => {
                            last = seq;
                            break;
                        }
                        Err(isc_transport_sim::SimError::Full) => {
                            ep.tx().publish().unwrap();
                            assert!(ep.tx().wait_space(T).unwrap(), "no space");
                        }
                        Err(e) => panic!("send: {e}"),
                    }
                }
                if n % 5 == 4 {
                    ep.tx().publish().unwrap();
                }
            }
            ep.tx().publish().unwrap();
            assert!(ep.tx().wait_released(last, T).unwrap());
            ep
        }));
    }
    let eps: Vec<_> = users.into_iter().map(|t| t.join().unwrap()).collect();
    drop(eps);
    for d in &drivers {
        assert!(eventually(|| d.unbinds.load(Ordering::SeqCst) == 1));
        assert_eq!(d.got.load(Ordering::SeqCst), MESSAGES as usize);
        assert_eq!(d.overlaps.load(Ordering::SeqCst), 0);
        assert_eq!(d.out_of_order.load(Ordering::SeqCst), 0);
    }
}

/// Raises the soft descriptor limit: each channel holds about ten
/// descriptors (both sides of it live in this process).
fn raise_fd_limit(need: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < need {
        assert!(
            hard >= need,
            "this test needs {need} descriptors; the hard limit is {hard}"
        );
        setrlimit(Resource::RLIMIT_NOFILE, need, hard).unwrap();
    }
}

#[test]
fn a_thousand_idle_channels_are_all_served_by_the_base_threads() {
    const CHANNELS: u32 = 1000;
    raise_fd_limit(16 * 1024);
    let host = SimHost::with_threads(DEFAULT_SPIN, 2).unwrap();
    let drivers: Vec<Arc<EchoDriver>> = (0..CHANNELS).map(|_| Arc::default()).collect();
    let mut eps = Vec::new();
    for (i, d) in drivers.iter().enumerate() {
        let u = 0x7200_0000 | i as u32;
        host.register(u, Arc::clone(d)).unwrap();
        eps.push(host.bind(&req(u, 32, 2)).unwrap());
    }
    for ep in &mut eps {
        assert_eq!(next_event(ep).0, Event::Bound);
        expect_post(ep, b"hello");
    }
    assert_eq!(host.stats().channels, u64::from(CHANNELS));
    // Let every channel go to sleep, then wake them in a scattered order:
    // each call reaches its own channel's driver and is answered.
    std::thread::sleep(Duration::from_millis(50));
    let mut buf = [0u8; 32];
    for k in 0..CHANNELS {
        let i = (k * 7919 % CHANNELS) as usize;
        let msg = format!("{i}");
        let r = eps[i].call(msg.as_bytes(), &mut buf, T).unwrap();
        let want: Vec<u8> = msg.bytes().rev().collect();
        assert_eq!(&buf[..r.len], &want[..]);
        assert_eq!(drivers[i].counts().got, 1);
    }
    // Posts from another thread reach the sleeping users.
    for (i, d) in drivers.iter().enumerate().step_by(2) {
        d.handle()
            .unwrap()
            .post(format!("p{i}").as_bytes())
            .unwrap();
    }
    for i in (0..CHANNELS as usize).step_by(2) {
        expect_post(&mut eps[i], format!("p{i}").as_bytes());
    }
    assert!(host.service_threads() <= 2);
    drop(eps);
    assert!(eventually(|| host.stats().channels == 0));
    for d in &drivers {
        assert_eq!(d.counts().unbound, 1);
    }
}

#[test]
fn channels_that_keep_every_thread_busy_do_not_hide_other_events() {
    // One service thread and a spin time longer than the test: once served,
    // no channel ever goes to sleep, so the queue never empties and the
    // thread never waits in `epoll`. A hang-up must still be noticed.
    let host = SimHost::with_threads(Duration::from_secs(3600), 1).unwrap();
    let (ua, ub) = (uid(b"busA"), uid(b"busB"));
    let (da, db) = (Arc::new(EchoDriver::new()), Arc::new(EchoDriver::new()));
    host.register(ua, da.clone()).unwrap();
    host.register(ub, db.clone()).unwrap();
    let mut epa = host.bind(&req(ua, 16, 4)).unwrap();
    let mut epb = host.bind(&req(ub, 16, 4)).unwrap();
    assert_eq!(next_event(&mut epa).0, Event::Bound);
    assert_eq!(next_event(&mut epb).0, Event::Bound);
    drop(epb);
    assert!(
        eventually(|| db.counts().unbound == 1),
        "the hang-up of a channel was never acted on"
    );
    let mut buf = [0u8; 16];
    assert_eq!(epa.call(b"abc", &mut buf, T).unwrap().rc, 3);
    assert_eq!(da.counts().unbound, 0);
}

#[test]
fn a_user_told_bound_who_leaves_at_once_still_gets_bound_then_unbind() {
    // The bind reply says "bound" when a driver is registered: the driver
    // must see that binding (bound, then unbind) however soon the user
    // leaves.
    const ROUNDS: u64 = 200;
    let host = SimHost::with_threads(DEFAULT_SPIN, 2).unwrap();
    let u = uid(b"quik");
    let d = Arc::new(EchoDriver::new());
    host.register(u, d.clone()).unwrap();
    for _ in 0..ROUNDS {
        let ep = bind_retry(&host, &req(u, 16, 2));
        assert_eq!(ep.link().response().bound, 1);
        drop(ep);
    }
    assert!(eventually(|| d.counts().unbound == ROUNDS));
    assert_eq!(d.counts().bound, ROUNDS);
}

#[test]
fn a_user_told_bound_learns_of_an_unregistration_before_its_first_round() {
    // The driver unregisters right after the bind reply said "bound",
    // whether or not the channel was served in between: the user sees
    // BOUND then UNBOUND, the driver bound then unbind.
    const ROUNDS: u64 = 100;
    let host = SimHost::with_threads(DEFAULT_SPIN, 2).unwrap();
    let u = uid(b"unrg");
    let d = Arc::new(EchoDriver::new());
    for i in 1..=ROUNDS {
        host.register(u, d.clone()).unwrap();
        let mut ep = bind_retry(&host, &req(u, 16, 4));
        assert_eq!(ep.link().response().bound, 1);
        host.unregister(u).unwrap();
        let mut events = Vec::new();
        while events.last() != Some(&Event::Unbound) {
            events.push(next_event(&mut ep).0);
        }
        assert_eq!(
            events,
            [Event::Bound, Event::Post { len: 5 }, Event::Unbound]
        );
        assert_eq!((d.counts().bound, d.counts().unbound), (i, i));
    }
}
