//! The async API (`tokio` feature) against the conformance test driver:
//! many calls in flight on one task, cancellation, timeouts and the event
//! stream. Runs on the simulated transport, and on the device with
//! `ISC_TRANSPORT=dev` (see `conformance.rs`).
#![cfg(feature = "tokio")]

use futures::StreamExt;
use isc::testdrv::{self, echo_reply, echo_request, harness, Control};
use isc::{Channel, Error, Event, Uid};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn ctl() -> &'static Control {
    &harness().control
}

fn open(uid: Uid, depth: u32) -> Channel {
    Channel::builder(uid)
        .u2k(64, depth)
        .k2u(64, 16)
        .transport(harness().transport.clone())
        .timeout(WAIT)
        .open()
        .unwrap()
}

#[tokio::test]
async fn many_calls_in_flight_on_one_task_each_get_their_reply() {
    let uid = Uid::fourcc(*b"as01");
    ctl().register(uid).unwrap();
    // More calls than slots: the rest wait for room.
    let ch = open(uid, 16);
    let reqs: Vec<Vec<u8>> = (0..100)
        .map(|i| echo_request(i, 0, format!("call {i}").as_bytes()))
        .collect();
    let replies = futures::future::join_all(reqs.iter().map(|r| ch.call_async(r))).await;
    for (i, (req, r)) in reqs.iter().zip(replies).enumerate() {
        assert_eq!(r.unwrap(), (i as i32, echo_reply(req)), "call {i}");
    }
    ctl().unregister(uid).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_and_blocking_callers_share_a_channel() {
    let uid = Uid::fourcc(*b"as02");
    ctl().register(uid).unwrap();
    let ch = open(uid, 8);
    let blocking = {
        let h = ch.handle();
        std::thread::spawn(move || {
            for i in 0..200 {
                let req = echo_request(-i, 0, b"blocking");
                assert_eq!(h.call_vec(&req).unwrap(), (-i, echo_reply(&req)));
            }
        })
    };
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let h = ch.handle();
            tokio::spawn(async move {
                for i in 0..50 {
                    let req = echo_request(t * 1000 + i, 0, format!("task {t}").as_bytes());
                    assert_eq!(
                        h.call_async(&req).await.unwrap(),
                        (t * 1000 + i, echo_reply(&req))
                    );
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    blocking.join().unwrap();
    ctl().unregister(uid).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_call_future_never_gets_its_reply_to_another_call() {
    let uid = Uid::fourcc(*b"as03");
    ctl().register(uid).unwrap();
    let ch = open(uid, 8);
    for round in 0..3 {
        // A blocking call keeps the driver busy, so the futures below wait.
        let h = ch.handle();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let slow = std::thread::spawn(move || {
            started_tx.send(()).unwrap();
            let req = echo_request(99, 300, b"slow");
            assert_eq!(h.call_vec(&req).unwrap(), (99, echo_reply(&req)));
        });
        started_rx.recv().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Cancelled while waiting: dropped by the timeout wrapper.
        let cancelled: Vec<Vec<u8>> = (0..4)
            .map(|i| echo_request(-1 - i, 0, format!("cancelled {round}/{i}").as_bytes()))
            .collect();
        let gone = tokio::time::timeout(
            Duration::from_millis(30),
            futures::future::join_all(cancelled.iter().map(|r| ch.call_async(r))),
        )
        .await;
        // Normally the calls are still queued behind the slow one and are
        // dropped by the timeout. On a starved machine the slow call may not
        // have reached the driver yet, and the calls complete instead: then
        // each must have got its own reply.
        if let Ok(done) = gone {
            for (req, got) in cancelled.iter().zip(done) {
                let rc = i32::from_le_bytes(req[..4].try_into().unwrap());
                assert_eq!(got.unwrap(), (rc, echo_reply(req)));
            }
        }
        // A future dropped before its first poll sends nothing.
        drop(ch.call_async(&echo_request(-100, 0, b"never polled")));
        slow.join().unwrap();
        // The cancelled calls' replies, when they come, go to nobody.
        for i in 0..20 {
            let req = echo_request(round * 100 + i, 0, b"fresh");
            assert_eq!(
                ch.call_async(&req).await.unwrap(),
                (round * 100 + i, echo_reply(&req))
            );
        }
    }
    ctl().unregister(uid).unwrap();
}

#[tokio::test]
async fn call_timeouts_and_no_limit() {
    let uid = Uid::fourcc(*b"as04");
    ctl().register(uid).unwrap();
    let ch = open(uid, 8);
    let h = ch.handle();
    let slow = std::thread::spawn(move || {
        let req = echo_request(1, 2000, b"slow");
        assert_eq!(h.call_vec(&req).unwrap(), (1, echo_reply(&req)));
    });
    // A short call queued behind the slow one times out. Until the slow call
    // has reached the driver (a starved machine may take a while), the short
    // call may still complete: then it must carry its own reply, and it is
    // tried again.
    let mut timed_out = false;
    while !slow.is_finished() {
        let req = echo_request(2, 0, b"hurry");
        match ch.call_async_timeout(&req, Duration::from_millis(20)).await {
            Err(Error::Timeout(d)) => {
                assert_eq!(d, Duration::from_millis(20));
                timed_out = true;
                break;
            }
            r => assert_eq!(r.unwrap(), (2, echo_reply(&req))),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(timed_out, "no call timed out behind a 2 s call");
    slow.join().unwrap();
    let req = echo_request(3, 0, b"no limit");
    let r = ch.call_async_timeout(&req, Duration::MAX).await.unwrap();
    assert_eq!(r, (3, echo_reply(&req)));
    ctl().unregister(uid).unwrap();
}

#[tokio::test]
async fn events_arrive_as_a_stream_that_ends_on_close() {
    let uid = Uid::fourcc(*b"as05");
    ctl().register(uid).unwrap();
    let ch = open(uid, 8);
    let mut events = ch.event_stream().unwrap();
    assert_eq!(events.next().await.unwrap().unwrap(), Event::Bound);
    // The driver may post only once its bound() has run.
    let deadline = std::time::Instant::now() + WAIT;
    while ctl().stats(uid).unwrap().bound != 1 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for round in 0..3 {
        assert_eq!(ctl().post(uid, 5, 8).unwrap().posted, 5);
        for i in 0..5 {
            match events.next().await.unwrap().unwrap() {
                Event::Message(m) => {
                    assert_eq!(m.bytes(), &testdrv::post_pattern(i, 8)[..], "round {round}")
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    // Listeners take the events from the stream.
    let id = ch
        .add_listener(isc::FnListener(|_: &isc::ChannelHandle, _: &[u8]| 0))
        .unwrap();
    assert!(matches!(
        events.next().await,
        Some(Err(Error::ListenersActive))
    ));
    ch.remove_listener(id);
    ctl().unregister(uid).unwrap();
    assert_eq!(events.next().await.unwrap().unwrap(), Event::Unbound);
    drop(ch);
    assert!(events.next().await.is_none());
}
