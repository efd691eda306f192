//! End to end in one process: the host's service threads and the user
//! endpoint talk through a real memfd region, eventfds and a socketpair.

mod common;

use common::*;
use isc_ring::abi::{errno, slot_flags, BindRequest, MAX_MSZ, MAX_SLOTS};
use isc_ring::{BindError, ConfigError};
use isc_transport_sim::sample::{EchoDriver, SinkDriver};
use isc_transport_sim::{Event, PostError, SimError, SimHost};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

#[test]
fn call_replies_in_place_with_rc() {
    let host = SimHost::new().unwrap();
    let u = uid(b"cal0");
    let drv = Arc::new(TestDriver::new().on_got(|_, msg| {
        if msg.data() == b"grow" {
            msg.set_reply(b"a longer reply").unwrap();
            return Some(-7);
        }
        if msg.data() == b"keep" {
            return Some(42); // reply untouched: the message itself
        }
        if msg.data() == b"shrink" {
            msg.set_len(2).unwrap();
            return Some(0);
        }
        None
    }));
    host.register(u, drv.clone()).unwrap();
    let mut ep = host.bind(&req(u, 64, 8)).unwrap();
    assert_eq!(ep.link().response().bound, 1);
    assert_eq!(next_event(&mut ep).0, Event::Bound);

    let mut buf = [0u8; 64];
    let r = ep.call(b"hello", &mut buf, T).unwrap();
    assert_eq!((r.rc, &buf[..r.len]), (5, &b"olleh"[..]));
    let r = ep.call(b"grow", &mut buf, T).unwrap();
    assert_eq!((r.rc, &buf[..r.len]), (-7, &b"a longer reply"[..]));
    let r = ep.call(b"keep", &mut buf, T).unwrap();
    assert_eq!((r.rc, &buf[..r.len]), (42, &b"keep"[..]));
    let r = ep.call(b"shrink", &mut buf, T).unwrap();
    assert_eq!((r.rc, &buf[..r.len]), (0, &b"sh"[..]));
    let r = ep.call(b"", &mut buf, T).unwrap();
    assert_eq!((r.rc, r.len), (0, 0));
    // A reply longer than the caller's buffer is truncated, its length kept.
    let mut small = [0u8; 3];
    let r = ep.call(b"abcdef", &mut small, T).unwrap();
    assert_eq!((r.rc, r.len, &small), (6, 6, b"fed"));
    assert!(matches!(
        ep.call(&[0u8; 65], &mut buf, T),
        Err(SimError::TooLarge { len: 65, max: 64 })
    ));
    assert_eq!(drv.count(&Ev::Got(b"hello".to_vec())), 1);
    assert_eq!(host.stats().messages, 6);
}

#[test]
fn calls_without_spinning_go_through_the_doorbells() {
    let host = SimHost::with_spin(Duration::ZERO).unwrap();
    let u = uid(b"slp0");
    host.register(u, Arc::new(EchoDriver::new())).unwrap();
    let mut ep = host.bind(&req(u, 32, 2)).unwrap();
    ep.set_spin(Duration::ZERO);
    assert_eq!(next_event(&mut ep).0, Event::Bound);
    expect_post(&mut ep, b"hello");
    let mut buf = [0u8; 32];
    for i in 0..300u32 {
        let msg = format!("m{i}");
        let r = ep.call(msg.as_bytes(), &mut buf, T).unwrap();
        let want: Vec<u8> = msg.bytes().rev().collect();
        assert_eq!((r.rc as usize, &buf[..r.len]), (msg.len(), &want[..]));
    }
}

#[test]
fn batched_sends_are_all_delivered() {
    for spin in [Duration::ZERO, isc_transport_sim::DEFAULT_SPIN] {
        let host = SimHost::with_spin(spin).unwrap();
        let u = uid(b"bat0");
        let sink = Arc::new(SinkDriver::new());
        host.register(u, sink.clone()).unwrap();
        let mut ep = host.bind(&req(u, 64, 16)).unwrap();
        ep.set_spin(spin);
        assert_eq!(next_event(&mut ep).0, Event::Bound);
        let tx = ep.tx();
        let msg = [0x5au8; 64];
        let total = 5000;
        let mut sent = 0;
        while sent < total {
            while sent < total {
                match tx.send(&msg) {
                    Ok(_) => sent += 1,
                    Err(SimError::Full) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            tx.publish().unwrap();
            if sent < total {
                assert!(tx.wait_space(T).unwrap(), "no space freed");
            }
        }
        assert!(eventually(|| sink.received() == total));
        assert_eq!(host.stats().messages, total);
    }
}

#[test]
fn posts_arrive_in_order_and_a_full_ring_is_never_overwritten() {
    let host = SimHost::new().unwrap();
    let u = uid(b"pst0");
    let drv = Arc::new(TestDriver::new());
    host.register(u, drv.clone()).unwrap();
    let mut ep = host.bind(&req(u, 16, 4)).unwrap();
    assert_eq!(next_event(&mut ep).0, Event::Bound);
    assert!(drv.wait_count(&Ev::Bound, 1));
    let h = drv.handle().unwrap();
    assert_eq!(h.max_post(), 16);
    assert!(h.is_bound());
    for i in 0..4 {
        h.post(format!("p{i}").as_bytes()).unwrap();
    }
    assert_eq!(h.post(b"p4"), Err(PostError::Full));
    assert_eq!(
        h.post(&[0; 17]),
        Err(PostError::TooLarge { len: 17, max: 16 })
    );
    assert_eq!(PostError::Full.to_errno(), -errno::EAGAIN);
    for i in 0..4 {
        expect_post(&mut ep, format!("p{i}").as_bytes());
    }
    // Posts from another thread.
    let h2 = h.clone();
    std::thread::spawn(move || h2.post(b"from a thread").unwrap())
        .join()
        .unwrap();
    expect_post(&mut ep, b"from a thread");
    let s = host.stats();
    assert_eq!((s.posts, s.posts_full), (5, 1));
}

#[test]
fn concurrent_posters_lose_nothing() {
    let host = SimHost::new().unwrap();
    let u = uid(b"mpst");
    let drv = Arc::new(TestDriver::new());
    host.register(u, drv.clone()).unwrap();
    let (_tx, mut rx) = host.bind(&req(u, 16, 8)).unwrap().split();
    let mut buf = [0u8; 16];
    assert_eq!(rx.recv(&mut buf, T).unwrap(), Some(Event::Bound));
    assert!(drv.wait_count(&Ev::Bound, 1));
    let h = drv.handle().unwrap();
    let per = 500u32;
    let posters: Vec<_> = (0..3u32)
        .map(|t| {
            let h = h.clone();
            std::thread::spawn(move || {
                for i in 0..per {
                    let m = (t * 1_000_000 + i).to_le_bytes();
                    loop {
                        match h.post(&m) {
                            Ok(()) => break,
                            Err(PostError::Full) => std::thread::yield_now(),
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            })
        })
        .collect();
    let mut next = [0u32; 3];
    for _ in 0..3 * per {
        match rx.recv(&mut buf, T).unwrap() {
            Some(Event::Post { len: 4 }) => {
                let v = u32::from_le_bytes(buf[..4].try_into().unwrap());
                let (t, i) = ((v / 1_000_000) as usize, v % 1_000_000);
                assert_eq!(i, next[t], "poster {t} out of order");
                next[t] += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    for p in posters {
        p.join().unwrap();
    }
    assert_eq!(next, [per; 3]);
}

#[test]
fn user_first_then_driver() {
    let host = SimHost::new().unwrap();
    let u = uid(b"usr1");
    let mut ep = host.bind(&req(u, 32, 4)).unwrap();
    assert_eq!(ep.link().response().bound, 0);
    let mut buf = [0u8; 32];
    // No driver: completed with -ENODEV and NOT_DELIVERED, never hangs.
    assert!(matches!(
        ep.call(b"anyone?", &mut buf, T),
        Err(SimError::NotBound)
    ));
    let tx = ep.tx();
    let seq = tx.send(b"raw").unwrap();
    tx.publish().unwrap();
    assert!(tx.wait_released(seq, T).unwrap());
    let done = tx.producer_mut().completion().unwrap().unwrap();
    assert_eq!(done.seq(), seq);
    assert_eq!(done.rc(), -errno::ENODEV);
    assert_eq!(
        done.flags(),
        slot_flags::KIND_MSG | slot_flags::COMPLETED | slot_flags::NOT_DELIVERED
    );
    assert_eq!(done.reply_len(), 0);
    assert_eq!(host.stats().not_delivered, 2);
    assert_eq!(
        ep.recv(&mut buf, Some(Duration::from_millis(20))).unwrap(),
        None
    );

    let drv = Arc::new(TestDriver::new());
    host.register(u, drv.clone()).unwrap();
    assert_eq!(next_event(&mut ep).0, Event::Bound);
    let r = ep.call(b"now", &mut buf, T).unwrap();
    assert_eq!((r.rc, &buf[..r.len]), (3, &b"won"[..]));
    assert_eq!(drv.log(), [Ev::Bound, Ev::Got(b"now".to_vec())]);
}

#[test]
fn driver_first_then_user() {
    let host = SimHost::new().unwrap();
    let u = uid(b"drv1");
    let drv = Arc::new(TestDriver::new());
    host.register(u, drv.clone()).unwrap();
    assert!(matches!(
        host.register(u, Arc::new(TestDriver::new())),
        Err(SimError::AlreadyRegistered { .. })
    ));
    assert!(drv.log().is_empty(), "bound before any user");
    let mut ep = host.bind(&req(u, 32, 4)).unwrap();
    assert_eq!(ep.link().response().bound, 1);
    assert_eq!(next_event(&mut ep).0, Event::Bound);
    assert!(drv.wait_count(&Ev::Bound, 1));
}

#[test]
fn unregister_while_bound() {
    let host = SimHost::new().unwrap();
    let u = uid(b"unr1");
    let drv = Arc::new(TestDriver::new());
    host.register(u, drv.clone()).unwrap();
    let mut ep = host.bind(&req(u, 32, 4)).unwrap();
    assert_eq!(next_event(&mut ep).0, Event::Bound);
    assert!(drv.wait_count(&Ev::Bound, 1));
    let old = drv.handle().unwrap();

    host.unregister(u).unwrap();
    // Synchronous: unbind already ran, the old handle is dead.
    assert_eq!(drv.count(&Ev::Unbind), 1);
    assert!(!old.is_bound());
    assert_eq!(old.post(b"late"), Err(PostError::NotBound));
    assert_eq!(next_event(&mut ep).0, Event::Unbound);
    let mut buf = [0u8; 32];
    let err = ep.call(b"hello?", &mut buf, T).unwrap_err();
    assert!(matches!(err, SimError::NotBound), "{err}");
    assert!(err.to_string().contains("not delivered"));
    assert!(matches!(
        host.unregister(u),
        Err(SimError::NotRegistered { .. })
    ));

    // A new driver binds the same channel again, with a new handle.
    let drv2 = Arc::new(TestDriver::new());
    host.register(u, drv2.clone()).unwrap();
    assert_eq!(next_event(&mut ep).0, Event::Bound);
    assert!(drv2.wait_count(&Ev::Bound, 1));
    assert_eq!(old.post(b"stale"), Err(PostError::NotBound));
    drv2.handle().unwrap().post(b"fresh").unwrap();
    expect_post(&mut ep, b"fresh");
    let r = ep.call(b"ab", &mut buf, T).unwrap();
    assert_eq!(&buf[..r.len], b"ba");
    assert_eq!(drv.count(&Ev::Got(b"ab".to_vec())), 0);
}

#[test]
fn dropping_the_endpoint_unbinds_and_frees_the_uid() {
    let host = SimHost::new().unwrap();
    let u = uid(b"drp1");
    let drv = Arc::new(TestDriver::new());
    host.register(u, drv.clone()).unwrap();
    let (tx, mut rx) = host.bind(&req(u, 32, 4)).unwrap().split();
    let mut buf = [0u8; 32];
    assert_eq!(rx.recv(&mut buf, T).unwrap(), Some(Event::Bound));
    assert!(drv.wait_count(&Ev::Bound, 1));
    let h = drv.handle().unwrap();
    drop(tx);
    // Half an endpoint keeps the channel bound.
    assert!(h.is_bound());
    assert!(matches!(
        host.bind(&req(u, 32, 4)),
        Err(SimError::Busy { .. })
    ));
    drop(rx);
    assert!(drv.wait_count(&Ev::Unbind, 1));
    assert_eq!(h.post(b"gone"), Err(PostError::NotBound));
    assert!(eventually(|| !host.has_user(u)));
    let mut ep = bind_retry(&host, &req(u, 32, 4));
    assert_eq!(next_event(&mut ep).0, Event::Bound);
    assert!(drv.wait_count(&Ev::Bound, 2));
    assert_eq!(host.stats().channels, 1);
}

#[test]
fn second_bind_of_a_bound_uid_is_refused() {
    let host = SimHost::new().unwrap();
    let u = uid(b"bsy1");
    let _ep = host.bind(&req(u, 32, 4)).unwrap();
    let err = host.bind(&req(u, 64, 8)).unwrap_err();
    assert!(matches!(err, SimError::Busy { uid } if uid.0 == u), "{err}");
    assert!(err.to_string().contains("'bsy1'"), "{err}");
    // Other UIDs are unaffected.
    host.bind(&req(uid(b"bsy2"), 32, 4)).unwrap();
}

fn bind_error(host: &SimHost, r: &BindRequest) -> BindError {
    match host.bind(r) {
        Err(SimError::Bind(e)) => e,
        other => panic!("expected a bind error, got {other:?}"),
    }
}

#[test]
fn bad_bind_parameters_are_refused_clearly() {
    let host = SimHost::new().unwrap();
    let u = uid(b"bad1");
    let ring_err = |e: BindError| match e {
        BindError::Ring { ring, error } => (ring, error),
        other => panic!("expected a ring error, got {other}"),
    };
    let mut r = req(u, 0, 4);
    let e = bind_error(&host, &r);
    assert_eq!(e.errno(), errno::EINVAL);
    assert!(matches!(
        ring_err(e),
        ("u2k", ConfigError::BadMsz { msz: 0, .. })
    ));
    r = req(u, MAX_MSZ + 1, 4);
    assert!(matches!(
        ring_err(bind_error(&host, &r)),
        ("u2k", ConfigError::BadMsz { .. })
    ));
    r = req(u, 16, 4);
    r.k2u.num = 0;
    assert!(matches!(
        ring_err(bind_error(&host, &r)),
        ("k2u", ConfigError::BadNum { num: 0, .. })
    ));
    r.k2u.num = MAX_SLOTS + 1;
    assert!(matches!(
        ring_err(bind_error(&host, &r)),
        ("k2u", ConfigError::BadNum { .. })
    ));
    r.k2u.num = u32::MAX;
    assert!(matches!(
        ring_err(bind_error(&host, &r)),
        ("k2u", ConfigError::BadNum { .. })
    ));
    // msz * num beyond the per-ring cap (and beyond u32 with headers).
    r = req(u, MAX_MSZ, MAX_SLOTS);
    let e = bind_error(&host, &r);
    assert_eq!(e.errno(), errno::E2BIG);
    assert!(matches!(ring_err(e), ("u2k", ConfigError::TooBig { .. })));
    r = req(u, 16, 4);
    r.abi_version = 99;
    let e = bind_error(&host, &r);
    assert_eq!(e.errno(), errno::EPROTO);
    r = req(u, 16, 4);
    r.reserved = 1;
    assert_eq!(bind_error(&host, &r), BindError::Reserved);
    r = req(u, 16, 4);
    r.flags = 1;
    assert_eq!(bind_error(&host, &r), BindError::Reserved);
    let msg = SimError::Bind(BindError::Reserved).to_string();
    assert!(msg.starts_with("bind refused"), "{msg}");
    // None of it left anything behind.
    assert!(!host.has_user(u));
    host.bind(&req(u, 16, 4)).unwrap();
}

#[test]
fn callbacks_may_post_and_unregister_without_deadlock() {
    let host = Arc::new(SimHost::new().unwrap());
    let u = uid(b"cbk1");
    let weak: Arc<Mutex<Weak<SimHost>>> = Arc::new(Mutex::new(Weak::new()));
    let w = weak.clone();
    let drv = Arc::new(
        TestDriver::new()
            .on_bound(|d, h| {
                let r = h.post(b"from bound");
                d.record(Ev::Note(format!("bound post {r:?}")));
            })
            .on_got(move |d, msg| {
                if msg.data() == b"bye" {
                    let h = d.handle().unwrap();
                    h.post(b"bye!").unwrap();
                    let host = w.lock().unwrap().upgrade().unwrap();
                    host.unregister(u32::from_le_bytes(*b"cbk1")).unwrap();
                    // Unbind runs after this callback returns.
                    d.record(Ev::Note(format!("unbinds so far {}", d.count(&Ev::Unbind))));
                    return Some(9);
                }
                None
            }),
    );
    *weak.lock().unwrap() = Arc::downgrade(&host);
    host.register(u, drv.clone()).unwrap();
    let mut ep = host.bind(&req(u, 32, 8)).unwrap();
    assert_eq!(next_event(&mut ep).0, Event::Bound);
    expect_post(&mut ep, b"from bound");
    let mut buf = [0u8; 32];
    let r = ep.call(b"bye", &mut buf, T).unwrap();
    assert_eq!(r.rc, 9);
    expect_post(&mut ep, b"bye!");
    assert_eq!(next_event(&mut ep).0, Event::Unbound);
    assert!(drv.wait_count(&Ev::Unbind, 1));
    assert!(drv.log().contains(&Ev::Note("bound post Ok(())".into())));
    assert!(drv.log().contains(&Ev::Note("unbinds so far 0".into())));
    assert!(matches!(
        ep.call(b"x", &mut buf, T),
        Err(SimError::NotBound)
    ));
}

#[test]
fn control_messages_wait_for_space_and_keep_their_order() {
    for spin in [Duration::ZERO, isc_transport_sim::DEFAULT_SPIN] {
        let host = SimHost::with_spin(spin).unwrap();
        let u = uid(b"ctl1");
        let drv = Arc::new(TestDriver::new());
        host.register(u, drv.clone()).unwrap();
        let mut ep = host.bind(&req(u, 16, 2)).unwrap();
        ep.set_spin(spin);
        assert!(drv.wait_count(&Ev::Bound, 1));
        // k2u (2 slots): BOUND, "a" -- full.
        drv.handle().unwrap().post(b"a").unwrap();
        host.unregister(u).unwrap(); // UNBOUND waits
        let drv2 = Arc::new(TestDriver::new().on_bound(|d, h| {
            // BOUND is still queued: a post must not overtake it.
            d.record(Ev::Note(format!("{:?}", h.post(b"early"))));
        }));
        host.register(u, drv2.clone()).unwrap(); // BOUND waits too
        let note = Ev::Note("Err(Full)".into());
        assert!(drv2.wait_count(&note, 1), "{:?}", drv2.log());
        assert_eq!(next_event(&mut ep).0, Event::Bound);
        expect_post(&mut ep, b"a");
        assert_eq!(next_event(&mut ep).0, Event::Unbound);
        assert_eq!(next_event(&mut ep).0, Event::Bound);
        drv2.handle().unwrap().post(b"b").unwrap();
        expect_post(&mut ep, b"b");
    }
}

#[test]
fn scribbling_user_loses_only_its_own_channel() {
    let host = SimHost::new().unwrap();
    let good_uid = uid(b"good");
    let good_drv = Arc::new(TestDriver::new());
    host.register(good_uid, good_drv.clone()).unwrap();
    let mut good = host.bind(&req(good_uid, 32, 4)).unwrap();
    assert_eq!(next_event(&mut good).0, Event::Bound);
    let mut buf = [0u8; 32];
    for (i, how) in ALL_SCRIBBLES.into_iter().enumerate() {
        let u = uid(b"evil");
        let drv = Arc::new(TestDriver::new());
        host.register(u, drv.clone()).unwrap();
        let mut evil = bind_retry(&host, &req(u, 32, 4));
        assert_eq!(next_event(&mut evil).0, Event::Bound);
        assert!(drv.wait_count(&Ev::Bound, 1));
        let h = drv.handle().unwrap();
        scribble(&mut evil, how);
        if matches!(how, Scribble::K2uTail) {
            // The host reads the user's index only when the ring looks
            // full: within slot_count + 1 posts one fails.
            let refused = (0..5).map(|_| h.post(b"x")).find(|r| r.is_err());
            assert_eq!(refused, Some(Err(PostError::NotBound)), "{how:?}");
        }
        assert!(drv.wait_count(&Ev::Unbind, 1), "{how:?}: no unbind");
        assert!(
            eventually(|| evil.link().is_closed()),
            "{how:?}: not closed"
        );
        assert_eq!(h.post(b"y"), Err(PostError::NotBound));
        assert_eq!(host.stats().corrupt, i as u64 + 1, "{how:?}");
        // Everyone else is fine.
        let r = good.call(b"still here", &mut buf, T).unwrap();
        assert_eq!(&buf[..r.len], b"ereh llits");
        good_drv.handle().unwrap().post(b"ping").unwrap();
        expect_post(&mut good, b"ping");
        // The broken endpoint reports its end (or its own broken ring),
        // never a reply, a timeout or a panic.
        let r = evil.call(b"z", &mut buf, Some(Duration::from_millis(50)));
        assert!(
            matches!(r, Err(SimError::Closed) | Err(SimError::Corrupt(_))),
            "{how:?}: {r:?}"
        );
        host.unregister(u).unwrap();
    }
}

#[test]
fn host_shutdown_closes_every_user() {
    let host = SimHost::new().unwrap();
    let u = uid(b"sht1");
    let drv = Arc::new(TestDriver::new());
    host.register(u, drv.clone()).unwrap();
    let mut ep = host.bind(&req(u, 32, 4)).unwrap();
    let mut idle = host.bind(&req(uid(b"sht2"), 32, 4)).unwrap();
    assert_eq!(next_event(&mut ep).0, Event::Bound);
    drop(host);
    assert_eq!(drv.count(&Ev::Unbind), 1);
    assert_eq!(next_event(&mut ep).0, Event::Unbound);
    let mut buf = [0u8; 32];
    assert!(matches!(ep.recv(&mut buf, T), Err(SimError::Closed)));
    assert!(matches!(ep.call(b"x", &mut buf, T), Err(SimError::Closed)));
    assert!(idle.link().is_closed());
    assert!(matches!(
        idle.call(b"x", &mut buf, T),
        Err(SimError::Closed)
    ));
}

#[test]
fn waits_time_out() {
    let host = SimHost::new().unwrap();
    let u = uid(b"tmo1");
    let mut ep = host.bind(&req(u, 32, 4)).unwrap();
    let mut buf = [0u8; 32];
    let short = Some(Duration::from_millis(30));
    assert_eq!(ep.recv(&mut buf, short).unwrap(), None);
    assert!(!ep.link().wait_posts(short).unwrap());
    assert!(!ep.link().wait_completion(short).unwrap());
    assert!(!ep.link().is_closed());
}

#[test]
fn user_doorbell_is_pollable() {
    let host = SimHost::new().unwrap();
    let u = uid(b"fd01");
    let drv = Arc::new(TestDriver::new());
    host.register(u, drv.clone()).unwrap();
    let mut ep = host.bind(&req(u, 32, 4)).unwrap();
    assert_eq!(next_event(&mut ep).0, Event::Bound);
    assert!(drv.wait_count(&Ev::Bound, 1));
    // A dispatcher about to sleep announces it, then polls the fd.
    assert!(ep.rx().consumer_mut().prepare_wait());
    let poll_fd = |ep: &isc_transport_sim::UserEndpoint, ms: u16| {
        let mut fds = [PollFd::new(ep.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(ms)).unwrap()
    };
    assert_eq!(poll_fd(&ep, 10), 0);
    drv.handle().unwrap().post(b"wake").unwrap();
    assert_eq!(poll_fd(&ep, 10_000), 1);
    ep.rx().consumer_mut().finish_wait();
    assert!(ep.link().wait_posts(Some(Duration::ZERO)).unwrap());
    expect_post(&mut ep, b"wake");
}
