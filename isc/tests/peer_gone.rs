//! The driver side disappearing never hangs the application: blocked and
//! later operations fail with `Closed`, and closing returns promptly.

use isc::sim::{sample::EchoDriver, SimHost};
use isc::{Channel, ChannelHandle, Error, Event, FnListener, Transport, Uid};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn a_host_that_goes_away_closes_its_channels() {
    let dir = std::env::temp_dir().join(format!("isc-peer-gone-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let host = SimHost::new().unwrap();
    let uid = Uid::fourcc(*b"gone");
    host.register(uid.raw(), Arc::new(EchoDriver::new()))
        .unwrap();
    host.listen(&dir).unwrap();

    let channel = Channel::builder(uid)
        .transport(Transport::sim_socket(&dir))
        .timeout(Duration::from_secs(30))
        .open()
        .unwrap();
    assert_eq!(channel.recv(Duration::from_secs(10)).unwrap(), Event::Bound);
    let (rc, reply) = channel.call_vec(b"abc").unwrap();
    assert_eq!((rc, &reply[..]), (3, &b"cba"[..]));
    channel
        .add_listener(FnListener(|_: &ChannelHandle, _: &[u8]| 0))
        .unwrap();

    let started = Instant::now();
    drop(host);
    // Far sooner than the 30 s timeout: the transport noticed the hang-up.
    match channel.call_vec(b"abc") {
        Err(Error::Closed) => {}
        other => panic!("call on a dead host: {other:?}"),
    }
    // And every later operation.
    assert!(matches!(channel.send(b"x"), Err(Error::Closed)));
    assert!(matches!(channel.try_send(b"x"), Err(Error::Closed)));
    assert!(matches!(channel.call_vec(b"again"), Err(Error::Closed)));
    channel.close();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}
