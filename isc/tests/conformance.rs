//! The conformance suite: one set of tests, written against the facade,
//! that every transport must pass.
//!
//! By default it runs on the simulated transport, with the conformance test
//! driver (`isc::testdrv`) hosted in this process. With `ISC_TRANSPORT=dev`
//! it runs unchanged against `/dev/isc`, where the kernel module
//! `isc_testdrv.ko` speaks the same control protocol.
//!
//! Each test uses its own UID, so the tests can run in parallel.

use isc::testdrv::{self, echo_reply, echo_request, harness, Control};
use isc::{Channel, ChannelHandle, Error, Event, FnListener, Listener, Uid};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

fn ctl() -> &'static Control {
    &harness().control
}

fn open(uid: Uid) -> Result<Channel, Error> {
    open_with(uid, 64, 16, 64, 16)
}

fn open_with(
    uid: Uid,
    u2k_msz: u32,
    u2k_num: u32,
    k2u_msz: u32,
    k2u_num: u32,
) -> Result<Channel, Error> {
    Channel::builder(uid)
        .u2k(u2k_msz, u2k_num)
        .k2u(k2u_msz, k2u_num)
        .transport(harness().transport.clone())
        .timeout(WAIT)
        .open()
}

fn expect_event(ch: &Channel, want: Event) {
    let got = ch.recv(WAIT).expect("an event");
    assert_eq!(got, want);
}

use testdrv::post_pattern as posted;

/// Waits until the echo driver of `uid` has seen `n` `bound()` calls: the
/// driver learns it is bound asynchronously, and may only post after that.
fn driver_bound(uid: Uid, n: u32) {
    wait_until("the driver's bound()", || {
        ctl().stats(uid).unwrap().bound == n
    });
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn open_before_the_driver_registers() {
    let uid = Uid::fourcc(*b"cf01");
    let ch = open(uid).unwrap();
    assert!(!ch.is_bound());
    assert!(matches!(
        ch.call(&echo_request(0, 0, b"x"), &mut [0; 64]),
        Err(Error::NotBound)
    ));
    ctl().register(uid).unwrap();
    expect_event(&ch, Event::Bound);
    assert!(ch.is_bound());
    let req = echo_request(5, 0, b"abc");
    let (rc, reply) = ch.call_vec(&req).unwrap();
    assert_eq!((rc, reply), (5, echo_reply(&req)));
    ctl().unregister(uid).unwrap();
}

#[test]
fn open_after_the_driver_registers() {
    let uid = Uid::fourcc(*b"cf02");
    ctl().register(uid).unwrap();
    let ch = open(uid).unwrap();
    assert!(ch.is_bound());
    expect_event(&ch, Event::Bound);
    let req = echo_request(0, 0, b"hello");
    assert_eq!(ch.call_vec(&req).unwrap(), (0, echo_reply(&req)));
    assert_eq!(ctl().stats(uid).unwrap().bound, 1);
    ctl().unregister(uid).unwrap();
}

#[test]
fn bound_and_unbound_events_follow_the_driver() {
    let uid = Uid::fourcc(*b"cf03");
    ctl().register(uid).unwrap();
    let ch = open(uid).unwrap();
    expect_event(&ch, Event::Bound);
    ctl().unregister(uid).unwrap();
    expect_event(&ch, Event::Unbound);
    assert!(!ch.is_bound());
    assert!(matches!(
        ch.call(&echo_request(0, 0, b""), &mut []),
        Err(Error::NotBound)
    ));
    ctl().register(uid).unwrap();
    expect_event(&ch, Event::Bound);
    let req = echo_request(1, 0, b"again");
    assert_eq!(ch.call_vec(&req).unwrap(), (1, echo_reply(&req)));
    ctl().unregister(uid).unwrap();
}

#[test]
fn call_replies_in_place_with_the_result_code() {
    let uid = Uid::fourcc(*b"cf04");
    ctl().register(uid).unwrap();
    let ch = open(uid).unwrap();
    for rc in [0, 7, -22, i32::MIN, i32::MAX] {
        let req = echo_request(rc, 0, b"0123456789abcdef");
        let mut reply = [0u8; 64];
        let r = ch.call(&req, &mut reply).unwrap();
        assert_eq!(r.rc, rc);
        assert_eq!(&reply[..r.len], &echo_reply(&req)[..]);
    }
    // Shorter than the echo header: rc is the length, reply is the request.
    let r = ch.call(b"abc", &mut [0; 8]).unwrap();
    assert_eq!((r.rc, r.len), (3, 3));
    // A full-size message, and a reply buffer shorter than the reply.
    let req = echo_request(-1, 0, &[0xA5; 56]);
    let mut short = [0u8; 10];
    let r = ch.call(&req, &mut short).unwrap();
    assert_eq!((r.rc, r.len), (-1, 10));
    assert_eq!(&short[..], &echo_reply(&req)[..10]);
    ctl().unregister(uid).unwrap();
}

#[test]
fn oversized_messages_are_refused_and_nothing_is_sent() {
    let uid = Uid::fourcc(*b"cf05");
    ctl().register(uid).unwrap();
    let ch = open_with(uid, 32, 4, 32, 4).unwrap();
    let big = [0u8; 33];
    assert!(matches!(
        ch.call(&big, &mut [0; 64]),
        Err(Error::TooLarge { len: 33, max: 32 })
    ));
    assert!(matches!(
        ch.send(&big),
        Err(Error::TooLarge { len: 33, max: 32 })
    ));
    assert!(matches!(
        ch.try_send(&big),
        Err(Error::TooLarge { len: 33, max: 32 })
    ));
    assert!(matches!(
        ch.send_batch([&b"ok"[..], &big]),
        Err(Error::TooLarge { .. })
    ));
    // The channel is intact, and nothing of the refused batch went out.
    let req = echo_request(9, 0, b"fine");
    assert_eq!(ch.call_vec(&req).unwrap(), (9, echo_reply(&req)));
    ctl().unregister(uid).unwrap();
}

#[test]
fn calls_while_unbound_fail_with_not_bound() {
    let uid = Uid::fourcc(*b"cf06");
    let ch = open(uid).unwrap();
    for _ in 0..3 {
        assert!(matches!(
            ch.call(&echo_request(0, 0, b"?"), &mut [0; 64]),
            Err(Error::NotBound)
        ));
    }
    // One-way messages to nobody are counted, not lost silently. Completions
    // come in order, so by the time the call after it fails, the send's
    // fate is known.
    ch.send(b"lost").unwrap();
    assert!(matches!(
        ch.call(&echo_request(0, 0, b"?"), &mut [0; 64]),
        Err(Error::NotBound)
    ));
    assert_eq!(ch.undelivered(), 1);
    ctl().register(uid).unwrap();
    expect_event(&ch, Event::Bound);
    let req = echo_request(0, 0, b"now");
    assert_eq!(ch.call_vec(&req).unwrap(), (0, echo_reply(&req)));
    assert_eq!(ch.undelivered(), 1);
    ctl().unregister(uid).unwrap();
}

#[test]
fn post_flood_until_full_loses_nothing() {
    let uid = Uid::fourcc(*b"cf07");
    ctl().register(uid).unwrap();
    let ch = open_with(uid, 64, 4, 16, 8).unwrap();
    expect_event(&ch, Event::Bound);
    driver_bound(uid, 1);
    for round in 0..3 {
        let out = ctl().post(uid, 100, 16).unwrap();
        assert!(out.stopped_full, "round {round}: 100 posts fit in 8 slots?");
        assert!(
            out.posted > 0 && out.posted <= 8,
            "round {round}: posted {}",
            out.posted
        );
        for i in 0..out.posted {
            match ch.recv(WAIT).unwrap() {
                Event::Message(m) => {
                    assert_eq!(m.bytes(), &posted(i, 16)[..], "round {round} message {i}")
                }
                other => panic!("round {round}: unexpected {other:?}"),
            }
        }
        // The first round found the ring empty, later ones drained: every
        // round fills all 8 slots.
        assert_eq!(out.posted, 8, "round {round}");
        // Exactly the accepted posts arrived: nothing more is queued.
        assert!(ch.try_recv().unwrap().is_none());
    }
    ctl().unregister(uid).unwrap();
}

#[test]
fn listeners_can_add_and_remove_listeners_while_dispatching() {
    let uid = Uid::fourcc(*b"cf08");
    ctl().register(uid).unwrap();
    let ch = open_with(uid, 64, 4, 16, 16).unwrap();
    expect_event(&ch, Event::Bound);
    driver_bound(uid, 1);

    let seen_a = Arc::new(Mutex::new(Vec::new()));
    let seen_b = Arc::new(Mutex::new(Vec::new()));
    let id_a = Arc::new(OnceLock::new());

    struct B {
        seen: Arc<Mutex<Vec<u32>>>,
        me: Arc<OnceLock<isc::ListenerId>>,
    }
    impl Listener for B {
        fn got(&self, ch: &ChannelHandle, msg: &[u8]) -> i32 {
            let i = u32::from_le_bytes(msg[..4].try_into().unwrap());
            self.seen.lock().unwrap().push(i);
            if i == 5 {
                // The last listener removes itself: the rest stays queued.
                assert!(ch.remove_listener(*self.me.get().unwrap()));
            }
            0
        }
    }
    let a = {
        let (seen_a, seen_b, id_a) = (seen_a.clone(), seen_b.clone(), id_a.clone());
        FnListener(move |ch: &ChannelHandle, msg: &[u8]| {
            seen_a
                .lock()
                .unwrap()
                .push(u32::from_le_bytes(msg[..4].try_into().unwrap()));
            let me_b = Arc::new(OnceLock::new());
            let id_b = ch
                .add_listener(B {
                    seen: seen_b.clone(),
                    me: me_b.clone(),
                })
                .unwrap();
            me_b.set(id_b).unwrap();
            assert!(ch.remove_listener(*id_a.get().unwrap()));
            0
        })
    };
    id_a.set(ch.add_listener(a).unwrap()).unwrap();
    let out = ctl().post(uid, 10, 16).unwrap();
    assert_eq!(out.posted, 10);
    wait_until("listener B to remove itself", || {
        seen_b.lock().unwrap().len() == 5
    });
    // With no listeners left, the pull API gets the rest, in order.
    let mut rest = Vec::new();
    let deadline = Instant::now() + WAIT;
    while rest.len() < 4 {
        assert!(
            Instant::now() < deadline,
            "the rest of the posts did not arrive: {rest:?}"
        );
        match ch.recv(WAIT) {
            Ok(Event::Message(m)) => {
                rest.push(u32::from_le_bytes(m.bytes()[..4].try_into().unwrap()))
            }
            Ok(other) => panic!("unexpected {other:?}"),
            // The dispatcher may still be finishing the event it delivered to B.
            Err(Error::ListenersActive) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(*seen_a.lock().unwrap(), [0]);
    assert_eq!(*seen_b.lock().unwrap(), [1, 2, 3, 4, 5]);
    assert_eq!(rest, [6, 7, 8, 9]);
    ctl().unregister(uid).unwrap();
}

#[test]
fn listeners_receive_bound_unbound_and_posts() {
    let uid = Uid::fourcc(*b"cf09");
    let ch = open(uid).unwrap();
    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);
    impl Listener for Log {
        fn bound(&self, _: &ChannelHandle) {
            self.0.lock().unwrap().push("bound".into());
        }
        fn unbound(&self, _: &ChannelHandle) {
            self.0.lock().unwrap().push("unbound".into());
        }
        fn got(&self, _: &ChannelHandle, msg: &[u8]) -> i32 {
            self.0.lock().unwrap().push(format!("msg{}", msg[0]));
            0
        }
    }
    let log = Arc::new(Log::default());
    ch.add_listener(log.clone()).unwrap();
    assert!(matches!(ch.try_recv(), Err(Error::ListenersActive)));
    ctl().register(uid).unwrap();
    driver_bound(uid, 1);
    assert_eq!(ctl().post(uid, 2, 8).unwrap().posted, 2);
    ctl().unregister(uid).unwrap();
    wait_until("four events", || log.0.lock().unwrap().len() == 4);
    assert_eq!(*log.0.lock().unwrap(), ["bound", "msg0", "msg1", "unbound"]);
}

#[test]
fn many_threads_call_at_once() {
    let uid = Uid::fourcc(*b"cf10");
    ctl().register(uid).unwrap();
    let ch = open(uid).unwrap();
    let threads = 8;
    let calls = 200;
    std::thread::scope(|s| {
        for t in 0..threads {
            let h = ch.handle();
            s.spawn(move || {
                for i in 0..calls {
                    let payload = format!("thread {t} call {i}");
                    let req = echo_request(t * 1000 + i, 0, payload.as_bytes());
                    let (rc, reply) = h.call_vec(&req).unwrap();
                    assert_eq!(rc, t * 1000 + i);
                    assert_eq!(reply, echo_reply(&req));
                }
            });
        }
    });
    ctl().unregister(uid).unwrap();
}

#[test]
fn driver_unregisters_while_calls_are_in_flight() {
    let uid = Uid::fourcc(*b"cf11");
    // A round proves a call was in the driver when it unregistered: a slow
    // call started before the unregister and completed after it began, with
    // its reply. A round where the unregister came first (the caller was
    // scheduled late) is retried.
    let mut proven = false;
    for round in 0..5 {
        proven = unregister_round(uid, round);
        if proven {
            break;
        }
    }
    assert!(proven, "no call was in flight when the driver unregistered");
}

/// One round of [`driver_unregisters_while_calls_are_in_flight`]: four
/// callers of short calls and one slow call while the driver unregisters.
/// Returns whether the slow call was in the driver across the unregister.
fn unregister_round(uid: Uid, round: u32) -> bool {
    ctl().register(uid).unwrap();
    // The previous round's channel may still be unbinding.
    let deadline = Instant::now() + WAIT;
    let ch = loop {
        match open(uid) {
            Err(Error::Busy(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            other => break other.unwrap(),
        }
    };
    expect_event(&ch, Event::Bound);
    let finished = AtomicUsize::new(0);
    // 0: before the unregister, 1: it has begun.
    let phase = AtomicUsize::new(0);
    let slow_started = AtomicUsize::new(0);
    let proven = std::thread::scope(|s| {
        let slow = {
            let h = ch.handle();
            let (phase, slow_started) = (&phase, &slow_started);
            s.spawn(move || {
                let req = echo_request(77, 1000, format!("slow {round}").as_bytes());
                let before = phase.load(Ordering::SeqCst);
                slow_started.store(1, Ordering::SeqCst);
                let r = h.call_vec(&req);
                let after = phase.load(Ordering::SeqCst);
                match r {
                    Ok((rc, reply)) => {
                        assert_eq!((rc, reply), (77, echo_reply(&req)));
                        before == 0 && after == 1
                    }
                    Err(Error::NotBound) => false,
                    Err(e) => panic!("slow call failed with {e}"),
                }
            })
        };
        for t in 0..4 {
            let h = ch.handle();
            let finished = &finished;
            s.spawn(move || {
                for i in 0..5 {
                    let req = echo_request(t, 20, format!("{t}/{i}").as_bytes());
                    match h.call_vec(&req) {
                        Ok((rc, reply)) => {
                            assert_eq!(rc, t);
                            assert_eq!(reply, echo_reply(&req));
                        }
                        Err(Error::NotBound) => {}
                        Err(e) => panic!("call failed with {e}"),
                    }
                }
                finished.fetch_add(1, Ordering::Relaxed);
            });
        }
        wait_until("the slow call to start", || {
            slow_started.load(Ordering::SeqCst) == 1
        });
        // The slow call sleeps in the driver for a second: unregister in
        // the middle of it.
        std::thread::sleep(Duration::from_millis(200));
        phase.store(1, Ordering::SeqCst);
        ctl().unregister(uid).unwrap();
        slow.join().unwrap()
    });
    assert_eq!(finished.load(Ordering::Relaxed), 4);
    assert!(matches!(
        ch.call(&echo_request(0, 0, b""), &mut []),
        Err(Error::NotBound)
    ));
    expect_event(&ch, Event::Unbound);
    proven
}

#[test]
fn close_and_reopen_the_same_uid() {
    let uid = Uid::fourcc(*b"cf12");
    ctl().register(uid).unwrap();
    for round in 1..=3u32 {
        let ch = open(uid).unwrap();
        expect_event(&ch, Event::Bound);
        let req = echo_request(round as i32, 0, b"round");
        assert_eq!(ch.call_vec(&req).unwrap(), (round as i32, echo_reply(&req)));
        ch.close();
        wait_until("unbind", || ctl().stats(uid).unwrap().unbind == round);
    }
    assert_eq!(ctl().stats(uid).unwrap().bound, 3);
    ctl().unregister(uid).unwrap();
}

#[test]
fn dropping_a_bound_channel_unbinds_it() {
    let uid = Uid::fourcc(*b"cf13");
    ctl().register(uid).unwrap();
    {
        let ch = open(uid).unwrap();
        let h = ch.handle();
        ch.add_listener(FnListener(|_: &ChannelHandle, _: &[u8]| 0))
            .unwrap();
        drop(ch);
        // Handles outlive the channel but only report it closed.
        assert!(matches!(h.call(b"late", &mut []), Err(Error::Closed)));
        assert!(matches!(
            h.add_listener(FnListener(|_: &ChannelHandle, _: &[u8]| 0)),
            Err(Error::Closed)
        ));
    }
    wait_until("unbind", || ctl().stats(uid).unwrap().unbind == 1);
    // And the UID is free again.
    let ch = open(uid).unwrap();
    expect_event(&ch, Event::Bound);
    drop(ch);
    ctl().unregister(uid).unwrap();
}

#[test]
fn a_bound_uid_cannot_be_opened_twice() {
    let uid = Uid::fourcc(*b"cf14");
    let first = open(uid).unwrap();
    assert!(matches!(open(uid), Err(Error::Busy(u)) if u == uid));
    drop(first);
    // Unbinding may complete asynchronously; the UID frees up promptly.
    let deadline = Instant::now() + WAIT;
    loop {
        match open(uid) {
            Ok(_) => break,
            Err(Error::Busy(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("reopen failed: {e}"),
        }
    }
}

#[test]
fn bad_parameters_are_refused_with_clear_errors() {
    use isc_ring::abi::{MAX_MSZ, MAX_RING_BYTES, MAX_SLOTS};
    use isc_ring::{BindError, ConfigError};
    let uid = Uid::fourcc(*b"cf15");
    let ring = |ring, error| BindError::Ring { ring, error };
    let msz = |msz| ConfigError::BadMsz { msz, max: MAX_MSZ };
    let num = |num| ConfigError::BadNum {
        num,
        max: MAX_SLOTS,
    };
    let too_big = ConfigError::TooBig {
        max: MAX_RING_BYTES,
    };
    for ((u2k_msz, u2k_num, k2u_msz, k2u_num), want) in [
        ((0, 8, 64, 8), ring("u2k", msz(0))),
        ((64, 0, 64, 8), ring("u2k", num(0))),
        ((64, 8, 0, 8), ring("k2u", msz(0))),
        ((64, 8, 64, 0), ring("k2u", num(0))),
        ((64 * 1024 + 1, 8, 64, 8), ring("u2k", msz(64 * 1024 + 1))),
        ((64, 64 * 1024 + 1, 64, 8), ring("u2k", num(64 * 1024 + 1))),
        ((64 * 1024, 64 * 1024, 64, 8), ring("u2k", too_big)),
        ((64, 8, 64 * 1024, 64 * 1024), ring("k2u", too_big)),
        (
            (u32::MAX, u32::MAX, u32::MAX, u32::MAX),
            ring("u2k", msz(u32::MAX)),
        ),
    ] {
        match open_with(uid, u2k_msz, u2k_num, k2u_msz, k2u_num) {
            Err(Error::InvalidConfig(e)) => {
                assert_eq!(e, want, "({u2k_msz}, {u2k_num}, {k2u_msz}, {k2u_num})");
                // The message names the ring and the limit.
                let text = e.to_string();
                assert!(
                    text.starts_with(match want {
                        BindError::Ring { ring, .. } => ring,
                        _ => unreachable!(),
                    }),
                    "{text}"
                );
            }
            other => panic!("({u2k_msz}, {u2k_num}, {k2u_msz}, {k2u_num}): {other:?}"),
        }
    }
    // The UID was never bound by those attempts.
    drop(open(uid).unwrap());
}

#[test]
fn typed_messages_round_trip() {
    use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Debug, PartialEq, Clone, Copy)]
    #[repr(C)]
    struct Echo {
        rc: i32,
        delay_ms: u32,
        payload: [u8; 8],
    }
    let uid = Uid::fourcc(*b"cf16");
    ctl().register(uid).unwrap();
    let ch = open(uid).unwrap();
    let req = Echo {
        rc: -5,
        delay_ms: 0,
        payload: *b"abcdefgh",
    };
    let (rc, reply): (i32, Echo) = ch.call_as(&req).unwrap();
    assert_eq!(rc, -5);
    assert_eq!(
        reply,
        Echo {
            payload: *b"hgfedcba",
            ..req
        }
    );
    // A reply too short for the type is an error, not garbage.
    let r: Result<(i32, [u8; 32]), _> = ch.call_as(&req);
    assert!(matches!(
        r,
        Err(Error::BadLength {
            len: 16,
            expected: 32
        })
    ));
    ctl().unregister(uid).unwrap();
}

#[test]
fn the_channel_fd_signals_posts() {
    use std::os::fd::AsFd;
    let uid = Uid::fourcc(*b"cf17");
    ctl().register(uid).unwrap();
    let ch = open(uid).unwrap();
    expect_event(&ch, Event::Bound);
    driver_bound(uid, 1);
    assert!(ch.try_recv().unwrap().is_none());
    ctl().post(uid, 1, 8).unwrap();
    let mut fds = [nix::poll::PollFd::new(
        ch.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let n = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10_000u16)).unwrap();
    assert_eq!(n, 1, "the fd did not become readable");
    match ch.try_recv().unwrap() {
        Some(Event::Message(m)) => assert_eq!(m.bytes(), &posted(0, 8)[..]),
        other => panic!("unexpected {other:?}"),
    }
    let events: Vec<Vec<u8>> = {
        assert_eq!(ctl().post(uid, 3, 8).unwrap().posted, 3);
        ch.events()
            .take(3)
            .map(|e| match e.unwrap() {
                Event::Message(m) => m.bytes().to_vec(),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    };
    assert_eq!(events, [posted(0, 8), posted(1, 8), posted(2, 8)]);
    ctl().unregister(uid).unwrap();
}

/// A request whose payload names its sender and number, so a reply handed
/// to the wrong caller, lost or duplicated shows up as a mismatch.
fn tagged(thread: usize, i: usize, delay_ms: u32) -> Vec<u8> {
    echo_request(
        (thread * 100_000 + i) as i32,
        delay_ms,
        format!("t{thread}/{i}").as_bytes(),
    )
}

#[test]
fn concurrent_callers_with_mixed_sends_each_get_their_own_reply() {
    let uid = Uid::fourcc(*b"cf18");
    ctl().register(uid).unwrap();
    // A shallow ring, so slots wrap and callers wait for room.
    let ch = open_with(uid, 64, 4, 64, 4).unwrap();
    expect_event(&ch, Event::Bound);
    let threads = 6;
    let rounds = 150;
    let replies = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..threads {
            let h = ch.handle();
            let replies = &replies;
            s.spawn(move || {
                let mut buf = [0u8; 64];
                for i in 0..rounds {
                    match (t + i) % 4 {
                        0 => h.send(&tagged(t, i, 0)).unwrap(),
                        1 => match h.try_send(&tagged(t, i, 0)) {
                            Ok(()) | Err(Error::Full) => {}
                            Err(e) => panic!("try_send: {e}"),
                        },
                        2 => {
                            let reqs: Vec<Vec<u8>> =
                                (0..3).map(|k| tagged(t, i * 10 + k, 0)).collect();
                            let refs: Vec<&[u8]> = reqs.iter().map(|r| &r[..]).collect();
                            let got = h.call_batch(&refs).unwrap();
                            assert_eq!(got.len(), 3);
                            for (req, r) in reqs.iter().zip(got) {
                                let (rc, reply) = r.unwrap();
                                assert_eq!(rc, i32::from_le_bytes(req[..4].try_into().unwrap()));
                                assert_eq!(reply, echo_reply(req));
                                replies.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        _ => {
                            let req = tagged(t, i, 0);
                            let r = h.call(&req, &mut buf).unwrap();
                            assert_eq!(r.rc, (t * 100_000 + i) as i32);
                            assert_eq!(&buf[..r.len], &echo_reply(&req)[..]);
                            replies.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    // Every call got exactly its own reply (checked above), all of them.
    let calls_per_thread: usize = (0..rounds)
        .map(|i| {
            (0..threads).filter(|t| (t + i) % 4 == 2).count() * 3
                + (0..threads).filter(|t| (t + i) % 4 == 3).count()
        })
        .sum();
    assert_eq!(replies.load(Ordering::Relaxed), calls_per_thread);
    assert_eq!(ch.undelivered(), 0);
    // The channel is still in order afterwards.
    let req = tagged(99, 0, 0);
    assert_eq!(ch.call_vec(&req).unwrap(), (9_900_000, echo_reply(&req)));
    ctl().unregister(uid).unwrap();
}

#[test]
fn call_batch_returns_every_reply_in_order() {
    let uid = Uid::fourcc(*b"cf19");
    ctl().register(uid).unwrap();
    let ch = open_with(uid, 64, 8, 64, 8).unwrap();
    // More requests than the ring holds: they go out as slots free up.
    let reqs: Vec<Vec<u8>> = (0..50).map(|i| tagged(0, i, 0)).collect();
    let mut refs: Vec<&[u8]> = reqs.iter().map(|r| &r[..]).collect();
    refs.push(b"abc");
    let got = ch.call_batch(&refs).unwrap();
    assert_eq!(got.len(), 51);
    for (i, (req, r)) in reqs.iter().zip(&got).enumerate() {
        let (rc, reply) = r.as_ref().unwrap();
        assert_eq!(*rc, i as i32);
        assert_eq!(reply, &echo_reply(req));
    }
    // A short message: rc is its length, the reply the message itself.
    assert_eq!(got[50].as_ref().unwrap(), &(3, b"abc".to_vec()));
    // Into the caller's buffers, truncated to each buffer's length.
    let mut bufs = vec![[0u8; 64]; 20];
    let mut short = [0u8; 10];
    let mut replies: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
    replies.push(&mut short);
    let into_reqs: Vec<&[u8]> = refs[..20].iter().copied().chain([&reqs[21][..]]).collect();
    let results = ch.call_batch_into(&into_reqs, &mut replies).unwrap();
    assert_eq!(results.len(), 21);
    for (i, r) in results[..20].iter().enumerate() {
        let r = r.as_ref().unwrap();
        assert_eq!(r.rc, i as i32);
        assert_eq!(&bufs[i][..r.len], &echo_reply(&reqs[i])[..]);
    }
    assert_eq!(results[20].as_ref().unwrap().len, 10);
    assert_eq!(&short[..], &echo_reply(&reqs[21])[..10]);
    assert!(ch.call_batch_into(&into_reqs, &mut []).is_err());
    assert!(ch.call_batch(&[]).unwrap().is_empty());
    // An oversized request fails the batch before anything is sent.
    let big = [0u8; 65];
    let before = tagged(1, 1, 0);
    assert!(matches!(
        ch.call_batch(&[&before[..], &big[..]]),
        Err(Error::TooLarge { len: 65, max: 64 })
    ));
    let after = tagged(1, 2, 0);
    assert_eq!(ch.call_vec(&after).unwrap(), (100_002, echo_reply(&after)));
    ctl().unregister(uid).unwrap();
    // Without a driver, each request fails on its own.
    expect_event(&ch, Event::Bound);
    expect_event(&ch, Event::Unbound);
    let got = ch.call_batch(&[&before[..], &after[..]]).unwrap();
    assert!(
        got.iter().all(|r| matches!(r, Err(Error::NotBound))),
        "{got:?}"
    );
}

#[test]
fn a_timed_out_call_fails_alone_and_its_reply_reaches_nobody() {
    let uid = Uid::fourcc(*b"cf20");
    ctl().register(uid).unwrap();
    let ch = open(uid).unwrap();
    let mut buf = [0u8; 64];
    for round in 0..2 {
        std::thread::scope(|s| {
            // A slow call keeps the driver busy (on the device its thread
            // runs the driver inside its KICK), so the next call waits.
            let h = ch.handle();
            let (started_tx, started_rx) = std::sync::mpsc::channel();
            let slow = s.spawn(move || {
                started_tx.send(()).unwrap();
                let req = echo_request(7, 400, b"patient");
                let (rc, reply) = h.call_vec(&req).unwrap();
                assert_eq!((rc, reply), (7, echo_reply(&req)));
            });
            started_rx.recv().unwrap();
            std::thread::sleep(Duration::from_millis(100));
            let quick = echo_request(2, 0, format!("late {round}").as_bytes());
            match ch.call_timeout(&quick, &mut buf, Duration::from_millis(30)) {
                Err(Error::Timeout(d)) => assert_eq!(d, Duration::from_millis(30)),
                other => panic!("expected a timeout, got {other:?}"),
            }
            slow.join().unwrap();
        });
        // The timed-out call's late reply is discarded: the next calls get
        // their own.
        for i in 0..5 {
            let req = echo_request(i, 0, b"next");
            let r = ch.call(&req, &mut buf).unwrap();
            assert_eq!((r.rc, &buf[..r.len]), (i, &echo_reply(&req)[..]));
        }
    }
    ctl().unregister(uid).unwrap();
}

#[test]
fn duration_max_means_no_time_limit() {
    let uid = Uid::fourcc(*b"cf21");
    ctl().register(uid).unwrap();
    let ch = Channel::builder(uid)
        .u2k(64, 4)
        .k2u(64, 4)
        .transport(harness().transport.clone())
        .timeout(Duration::MAX)
        .open()
        .unwrap();
    assert_eq!(ch.timeout(), Duration::MAX);
    assert_eq!(ch.recv(Duration::MAX).unwrap(), Event::Bound);
    driver_bound(uid, 1);
    let req = echo_request(4, 0, b"max");
    assert_eq!(ch.call_vec(&req).unwrap(), (4, echo_reply(&req)));
    let mut buf = [0u8; 64];
    assert_eq!(
        ch.call_timeout(&req, &mut buf, Duration::MAX).unwrap().rc,
        4
    );
    ch.send(b"one way").unwrap();
    ch.send_batch([&b"a"[..], b"b"]).unwrap();
    assert_eq!(
        ch.call_batch(&[&req[..]]).unwrap()[0].as_ref().unwrap().0,
        4
    );
    ctl().post(uid, 2, 8).unwrap();
    match ch.recv(Duration::MAX).unwrap() {
        Event::Message(m) => assert_eq!(m.bytes(), &posted(0, 8)[..]),
        other => panic!("unexpected {other:?}"),
    }
    match ch.events().next() {
        Some(Ok(Event::Message(m))) => assert_eq!(m.bytes(), &posted(1, 8)[..]),
        other => panic!("unexpected {other:?}"),
    }
    ctl().unregister(uid).unwrap();
}

#[test]
fn try_send_does_not_wait_for_another_threads_call() {
    let uid = Uid::fourcc(*b"cf22");
    ctl().register(uid).unwrap();
    let ch = open(uid).unwrap();
    let slow_done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let h = ch.handle();
        let slow_done = &slow_done;
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        s.spawn(move || {
            started_tx.send(()).unwrap();
            let req = echo_request(0, 1500, b"slow");
            assert_eq!(h.call_vec(&req).unwrap(), (0, echo_reply(&req)));
            slow_done.store(true, Ordering::SeqCst);
        });
        started_rx.recv().unwrap();
        // Let the slow call reach the driver.
        std::thread::sleep(Duration::from_millis(200));
        ch.try_send(b"quick").unwrap();
        // try_send returned while the slow call was still running.
        assert!(
            !slow_done.load(Ordering::SeqCst),
            "try_send waited for the slow call"
        );
    });
    ctl().unregister(uid).unwrap();
}

#[test]
fn a_panicking_listener_does_not_stop_delivery() {
    // The listener's panics are expected: keep them quiet. Printing a
    // symbolised backtrace for each takes seconds on a slow guest kernel,
    // which is not what this test measures. Other panics print as usual.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() != Some("isc-dispatch-cf23") {
                default(info);
            }
        }));
    });
    let uid = Uid::fourcc(*b"cf23");
    ctl().register(uid).unwrap();
    let ch = open(uid).unwrap();
    expect_event(&ch, Event::Bound);
    driver_bound(uid, 1);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    ch.add_listener(FnListener(move |_: &ChannelHandle, msg: &[u8]| {
        let i = u32::from_le_bytes(msg[..4].try_into().unwrap());
        seen2.lock().unwrap().push(i);
        if i % 2 == 0 {
            panic!("listener fails on message {i}");
        }
        0
    }))
    .unwrap();
    // A second listener still sees every message, panics or not.
    let count = Arc::new(AtomicUsize::new(0));
    let count2 = count.clone();
    ch.add_listener(FnListener(move |_: &ChannelHandle, _: &[u8]| {
        count2.fetch_add(1, Ordering::SeqCst);
        0
    }))
    .unwrap();
    assert_eq!(ctl().post(uid, 4, 8).unwrap().posted, 4);
    wait_until("four deliveries", || count.load(Ordering::SeqCst) == 4);
    assert_eq!(ctl().post(uid, 2, 8).unwrap().posted, 2);
    wait_until("two more deliveries", || count.load(Ordering::SeqCst) == 6);
    assert_eq!(*seen.lock().unwrap(), [0, 1, 2, 3, 0, 1]);
    assert_eq!(ch.listener_panics(), 3);
    ctl().unregister(uid).unwrap();
}

#[test]
fn a_uid_can_be_reopened_right_after_close() {
    let uid = Uid::fourcc(*b"cf24");
    ctl().register(uid).unwrap();
    for round in 0..50 {
        let ch = open(uid).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let req = echo_request(round, 0, b"again");
        assert_eq!(ch.call_vec(&req).unwrap(), (round, echo_reply(&req)));
        drop(ch);
    }
    ctl().unregister(uid).unwrap();
}

#[test]
fn closing_wakes_blocked_callers() {
    let uid = Uid::fourcc(*b"cf25");
    ctl().register(uid).unwrap();
    let ch = open_with(uid, 64, 2, 64, 4).unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let results = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let h = ch.handle();
                let ready = ready_tx.clone();
                s.spawn(move || {
                    ready.send(()).unwrap();
                    h.call_vec(&echo_request(t, 300, b"blocked"))
                })
            })
            .collect();
        for _ in 0..4 {
            ready_rx.recv().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        drop(ch);
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .collect::<Vec<_>>()
    });
    // Each either finished before the close or saw it; none hung or got
    // someone else's reply.
    for (t, r) in results.into_iter().enumerate() {
        match r {
            Ok((rc, reply)) => {
                assert_eq!(rc, t as i32);
                assert_eq!(reply, echo_reply(&echo_request(t as i32, 300, b"blocked")));
            }
            Err(Error::Closed) => {}
            Err(e) => panic!("caller {t}: {e}"),
        }
    }
    ctl().unregister(uid).unwrap();
}
