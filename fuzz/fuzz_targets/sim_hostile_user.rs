//! A hostile user against the simulated host: it binds with arbitrary
//! sizes, scribbles anywhere in its shared region between calls, and
//! leaves. The host never panics, and a well-behaved channel on the same
//! host keeps working after every input.
#![no_main]

use arbitrary::Arbitrary;
use isc_ring::abi::{BindRequest, RingRequest};
use isc_transport_sim::sample::EchoDriver;
use isc_transport_sim::{SimHost, UserEndpoint};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

const HOSTILE: u32 = u32::from_le_bytes(*b"evil");
const GOOD: u32 = u32::from_le_bytes(*b"good");
const WAIT: Option<Duration> = Some(Duration::from_millis(20));

#[derive(Arbitrary, Debug)]
enum Op {
    Scribble { offset: u16, value: u32 },
    Call { len: u8 },
    Kick,
    Recv,
}

#[derive(Arbitrary, Debug)]
struct Input {
    msz: u8,
    num: u8,
    ops: Vec<Op>,
}

struct World {
    host: SimHost,
    good: Mutex<UserEndpoint>,
}

fn request(uid: u32, msz: u32, num: u32) -> BindRequest {
    BindRequest::new(uid, RingRequest::new(msz, num), RingRequest::new(msz, num))
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let host = SimHost::new().expect("host");
        host.register(HOSTILE, Arc::new(EchoDriver::new()))
            .expect("register");
        host.register(GOOD, Arc::new(EchoDriver::new()))
            .expect("register");
        let good = host
            .bind(&request(GOOD, 64, 8))
            .expect("bind the good channel");
        World {
            host,
            good: Mutex::new(good),
        }
    })
}

fuzz_target!(|input: Input| {
    let w = world();
    let req = request(
        HOSTILE,
        u32::from(input.msz) + 1,
        u32::from(input.num % 16) + 1,
    );
    let Ok(mut ep) = w.host.bind(&req) else {
        return;
    };
    let region = ep.link().region_ptr();
    let len = ep.link().region_len();
    let mut buf = [0u8; 256];
    for op in input.ops.iter().take(32) {
        match *op {
            Op::Scribble { offset, value } => {
                let off = (usize::from(offset) & !3) % (len & !3);
                // SAFETY: in bounds and aligned; the region is shared memory
                // that the host must treat as hostile, which is the point.
                unsafe { region.as_ptr().add(off).cast::<u32>().write_volatile(value) };
            }
            Op::Call { len } => {
                let _ = ep.call(
                    &buf[..usize::from(len).min(usize::from(input.msz) + 1)],
                    &mut [0; 256],
                    WAIT,
                );
            }
            Op::Kick => {
                let _ = ep.link().kick();
            }
            Op::Recv => {
                let _ = ep.recv(&mut buf, Some(Duration::ZERO));
            }
        }
    }
    drop(ep);
    // The host tears the channel down asynchronously; wait for it, so the
    // next input can bind the UID again and no thread of this one lingers.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while w.host.has_user(HOSTILE) {
        assert!(
            std::time::Instant::now() < deadline,
            "hostile channel never torn down"
        );
        std::thread::sleep(Duration::from_micros(50));
    }
    // Whatever the hostile channel did, the good one still answers.
    let mut good = w.good.lock().unwrap();
    let reply = good
        .call(b"ping", &mut buf, Some(Duration::from_secs(10)))
        .expect("the good channel survives");
    assert_eq!(&buf[..reply.len], b"gnip");
});
