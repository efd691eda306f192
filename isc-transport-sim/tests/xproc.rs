//! End to end across processes: the region and doorbells travel over a Unix
//! socket with `SCM_RIGHTS`, and the other side is a real second process
//! (`isc-sim-server` or `isc-sim-client`, driven over stdin/stdout).

mod common;

use common::*;
use isc_ring::abi::{errno, MAX_MSZ};
use isc_ring::BindError;
use isc_transport_sim::wire::{self, BindReply, REPLY_LEN};
use isc_transport_sim::{Event, SimClient, SimError, SimHost};
use nix::sys::socket::{
    connect, recvmsg, sendmsg, socket, AddressFamily, ControlMessage, ControlMessageOwned,
    MsgFlags, SockFlag, SockType, UnixAddr,
};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use zerocopy::{FromBytes, IntoBytes};

fn server(path: &Path, uids: &[&str]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_isc-sim-server"));
    cmd.arg(path).args(uids);
    let mut p = Proc::spawn(cmd);
    assert_eq!(p.line(), "ready");
    p
}

fn client(path: &Path, uid: &str) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_isc-sim-client"));
    cmd.arg(path).arg(uid).args(["32", "4"]);
    Proc::spawn(cmd)
}

fn listening_host(tag: &str) -> (SimHost, std::path::PathBuf) {
    let host = SimHost::new().unwrap();
    let path = sock_path(tag);
    host.listen(&path).unwrap();
    (host, path)
}

#[test]
fn server_process_serves_calls_posts_and_binding_changes() {
    let path = sock_path("srv");
    let mut srv = server(&path, &["sam0"]);
    let u = uid(b"sam0");
    let mut ep = SimClient::connect(&path, &req(u, 64, 8)).unwrap();
    assert_eq!(ep.link().response().bound, 1);
    assert_eq!(next_event(&mut ep).0, Event::Bound);
    expect_post(&mut ep, b"hello");
    let mut buf = [0u8; 64];
    let r = ep.call(b"abc", &mut buf, T).unwrap();
    assert_eq!((r.rc, &buf[..r.len]), (3, &b"cba"[..]));
    for i in 0..1000 {
        let m = format!("message {i}");
        let r = ep.call(m.as_bytes(), &mut buf, T).unwrap();
        assert_eq!(r.rc as usize, m.len());
        assert_eq!(buf[..r.len], m.bytes().rev().collect::<Vec<_>>());
    }
    let r = ep.call(b"post 3", &mut buf, T).unwrap();
    assert_eq!(r.rc, 3);
    for i in 0..3 {
        expect_post(&mut ep, format!("post {i}").as_bytes());
    }

    // A second bind of the same UID is refused, from any process.
    assert!(matches!(
        SimClient::connect(&path, &req(u, 64, 8)),
        Err(SimError::Busy { .. })
    ));
    // Bad parameters: refused by the server with the device's errno, and
    // reported as the same typed error as in-process.
    match SimClient::connect(&path, &req(uid(b"sam1"), 0, 8)) {
        Err(SimError::Bind(BindError::Ring { ring: "u2k", .. })) => {}
        other => panic!("{other:?}"),
    }
    match SimClient::connect(&path, &req(uid(b"sam1"), MAX_MSZ, 65536)) {
        Err(SimError::Bind(e)) => assert_eq!(e.errno(), errno::E2BIG),
        other => panic!("{other:?}"),
    }

    // The driver leaves and comes back.
    assert_eq!(srv.ask("unregister sam0"), "ok");
    assert_eq!(next_event(&mut ep).0, Event::Unbound);
    assert!(matches!(
        ep.call(b"x", &mut buf, T),
        Err(SimError::NotBound)
    ));
    assert_eq!(srv.ask("register sam0"), "ok");
    assert_eq!(next_event(&mut ep).0, Event::Bound);
    expect_post(&mut ep, b"hello");
    assert_eq!(ep.call(b"xy", &mut buf, T).unwrap().rc, 2);

    // The server dies: the user sees the channel closed, nothing hangs.
    srv.kill();
    assert!(eventually(|| ep.link().is_closed()));
    assert!(matches!(ep.call(b"x", &mut buf, T), Err(SimError::Closed)));
    assert!(matches!(ep.recv(&mut buf, T), Err(SimError::Closed)));
    // Killed, the server could not remove its socket file.
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn client_process_calls_a_driver_in_this_process() {
    let (host, path) = listening_host("cli");
    let u = uid(b"xp01");
    let drv = Arc::new(TestDriver::new());
    host.register(u, drv.clone()).unwrap();
    let mut c = client(&path, "xp01");
    assert_eq!(c.line(), "ready bound=1");
    assert_eq!(c.ask("event 20000"), "bound");
    assert_eq!(c.ask("call hello world"), "reply 11 dlrow olleh");
    assert!(drv.wait_count(&Ev::Bound, 1));
    drv.handle().unwrap().post(b"to the child").unwrap();
    assert_eq!(c.ask("event 20000"), "post to the child");
    assert_eq!(drv.count(&Ev::Got(b"hello world".to_vec())), 1);
    // Quitting cleanly is an unbind too.
    assert!(c.finish());
    assert!(drv.wait_count(&Ev::Unbind, 1));
}

#[test]
fn client_process_first_then_driver() {
    let (host, path) = listening_host("ufirst");
    let mut c = client(&path, "xp02");
    assert_eq!(c.line(), "ready bound=0");
    let answer = c.ask("call anyone");
    assert!(
        answer.starts_with("error") && answer.contains("not delivered"),
        "{answer}"
    );
    let drv = Arc::new(TestDriver::new());
    host.register(uid(b"xp02"), drv.clone()).unwrap();
    assert_eq!(c.ask("event 20000"), "bound");
    assert_eq!(c.ask("call abc"), "reply 3 cba");
    assert_eq!(drv.log(), [Ev::Bound, Ev::Got(b"abc".to_vec())]);
}

#[test]
fn unregister_while_a_client_process_is_bound() {
    let (host, path) = listening_host("unreg");
    let u = uid(b"xp03");
    let drv = Arc::new(TestDriver::new());
    host.register(u, drv.clone()).unwrap();
    let mut c = client(&path, "xp03");
    assert_eq!(c.line(), "ready bound=1");
    assert_eq!(c.ask("event 20000"), "bound");
    host.unregister(u).unwrap();
    assert_eq!(drv.count(&Ev::Unbind), 1);
    assert_eq!(c.ask("event 20000"), "unbound");
    let answer = c.ask("call hello");
    assert!(answer.contains("not delivered"), "{answer}");
    assert_eq!(c.ask("closed 0"), "open");
}

#[test]
fn killed_client_process_is_unbound() {
    let (host, path) = listening_host("kill");
    let u = uid(b"xp04");
    let drv = Arc::new(TestDriver::new());
    host.register(u, drv.clone()).unwrap();
    let mut c = client(&path, "xp04");
    assert_eq!(c.line(), "ready bound=1");
    assert_eq!(c.ask("event 20000"), "bound");
    assert!(drv.wait_count(&Ev::Bound, 1));
    c.kill(); // SIGKILL: no destructor runs in the child
    assert!(drv.wait_count(&Ev::Unbind, 1), "unbind did not run");
    assert!(eventually(|| !host.has_user(u)));
    // The UID is free again, for a new process.
    let mut c2 = client(&path, "xp04");
    assert_eq!(c2.line(), "ready bound=1");
    assert_eq!(c2.ask("event 20000"), "bound");
    assert!(drv.wait_count(&Ev::Bound, 2));
}

#[test]
fn scribbling_client_process_loses_only_its_channel() {
    let (host, path) = listening_host("evil");
    let good_drv = Arc::new(TestDriver::new());
    host.register(uid(b"good"), good_drv.clone()).unwrap();
    let mut good = client(&path, "good");
    assert_eq!(good.line(), "ready bound=1");
    assert_eq!(good.ask("event 20000"), "bound");
    let mut local = SimClient::connect(&path, &req(uid(b"locl"), 32, 4)).unwrap();
    for (i, what) in ["u2k-head", "u2k-len", "u2k-flags"].into_iter().enumerate() {
        let u = uid(b"evil");
        let drv = Arc::new(TestDriver::new());
        host.register(u, drv.clone()).unwrap();
        let mut evil = client(&path, "evil");
        assert_eq!(evil.line(), "ready bound=1");
        assert_eq!(evil.ask("event 20000"), "bound");
        assert_eq!(evil.ask(&format!("scribble {what}")), "ok");
        assert!(drv.wait_count(&Ev::Unbind, 1), "{what}: no unbind");
        assert_eq!(evil.ask("closed 20000"), "closed", "{what}");
        assert_eq!(host.stats().corrupt, i as u64 + 1);
        // The other process and the local client still work.
        assert_eq!(good.ask("call still fine"), "reply 10 enif llits");
        let mut buf = [0u8; 32];
        assert!(matches!(
            local.call(b"x", &mut buf, T),
            Err(SimError::NotBound)
        ));
        assert!(evil.finish());
        host.unregister(u).unwrap();
    }
}

/// Connects a raw SOCK_SEQPACKET socket to the server.
fn raw_connect(path: &Path) -> OwnedFd {
    let s = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    connect(s.as_raw_fd(), &UnixAddr::new(path).unwrap()).unwrap();
    s
}

/// Receives the server's reply; returns it (if any) and how many fds came.
fn raw_reply(s: &OwnedFd) -> (Option<BindReply>, usize) {
    let mut buf = [0u8; 2 * REPLY_LEN];
    let mut cmsg = nix::cmsg_space!([RawFd; 8]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        s.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .unwrap();
    let mut nfds = 0;
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            nfds += fds.len();
            for fd in fds {
                let _ = nix::unistd::close(fd);
            }
        }
    }
    let n = msg.bytes;
    (BindReply::read_from_bytes(&buf[..n]).ok(), nfds)
}

#[test]
fn malformed_handshakes_are_refused_and_harmless() {
    let (host, path) = listening_host("wire");
    // Too short.
    let s = raw_connect(&path);
    nix::sys::socket::send(s.as_raw_fd(), b"abc", MsgFlags::empty()).unwrap();
    let (reply, nfds) = raw_reply(&s);
    let reply = reply.expect("a refusal");
    assert_eq!((reply.status, reply.nfds, nfds), (errno::EINVAL, 0, 0));
    assert!(wire::decode_bind_reply(reply.as_bytes(), 0).is_ok());
    // A valid request carrying a descriptor the server did not ask for.
    let s = raw_connect(&path);
    let r = req(uid(b"wir1"), 32, 4);
    let stray = [std::io::stdin().as_raw_fd()];
    sendmsg::<()>(
        s.as_raw_fd(),
        &[IoSlice::new(r.as_bytes())],
        &[ControlMessage::ScmRights(&stray)],
        MsgFlags::empty(),
        None,
    )
    .unwrap();
    let (reply, nfds) = raw_reply(&s);
    assert_eq!((reply.unwrap().status, nfds), (errno::EINVAL, 0));
    // Too long.
    let s = raw_connect(&path);
    nix::sys::socket::send(s.as_raw_fd(), &[0u8; 33], MsgFlags::empty()).unwrap();
    assert_eq!(raw_reply(&s).0.unwrap().status, errno::EINVAL);
    // Connects and leaves without a word; another connects and stays silent.
    drop(raw_connect(&path));
    let _silent = raw_connect(&path);
    // A valid raw request gets the four descriptors.
    let s = raw_connect(&path);
    nix::sys::socket::send(s.as_raw_fd(), r.as_bytes(), MsgFlags::empty()).unwrap();
    let (reply, nfds) = raw_reply(&s);
    assert_eq!((reply.unwrap().status, nfds), (0, wire::BIND_FDS));
    drop(s);
    // Through all that, the server kept serving.
    let drv = Arc::new(TestDriver::new());
    host.register(uid(b"wir2"), drv).unwrap();
    let mut ep = SimClient::connect(&path, &req(uid(b"wir2"), 32, 4)).unwrap();
    assert_eq!(next_event(&mut ep).0, Event::Bound);
    let mut buf = [0u8; 32];
    assert_eq!(ep.call(b"ok", &mut buf, T).unwrap().rc, 2);
    assert_eq!(host.stats().corrupt, 0);
}

#[test]
fn connect_to_nothing_fails_clearly() {
    let path = sock_path("none");
    match SimClient::connect(&path, &req(uid(b"none"), 32, 4)) {
        Err(SimError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
        other => panic!("{other:?}"),
    }
    let (_host, path) = listening_host("tmo");
    let r = SimClient::connect_timeout(&path, &req(uid(b"tmo1"), 32, 4), Duration::from_secs(20));
    assert!(r.is_ok());
}
