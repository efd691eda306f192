//! The ISC sample: an application talking to the sample driver.
//!
//! The sample driver exposes 256 32-bit registers through calls and posts an
//! "irq status" notification on a timer. The application opens UID `sam0`,
//! writes 32 registers with random values, reads each back and checks it,
//! prints the irq notifications it receives, and ends with a summary.
//!
//! By default the driver is the userspace one below, hosted in this process
//! on the simulated transport. With `ISC_TRANSPORT=dev` the same application
//! talks to the kernel's sample driver (`isc_sample.ko`) through `/dev/isc`.
//!
//! Protocol (the original sample's): 12-byte messages `{u32 id; u32 a; u32 b}`;
//! id 0x001 reads register `a` (reply `b` = value), id 0x002 writes `b` into
//! register `a`, id 0x100 is the irq post (`a` = irq id, `b` = status counter).

use isc::sim::{Handle, Message, SimDriver, SimHost};
use isc::{Channel, ChannelHandle, Listener, Transport, Uid};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

const UID: Uid = Uid::fourcc(*b"sam0");
const READ: u32 = 0x001;
const WRITE: u32 = 0x002;
const IRQ: u32 = 0x100;
const REGISTERS: usize = 256;
const EINVAL: i32 = 22;

/// The sample protocol's message.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct SampleMsg {
    id: u32,
    a: u32,
    b: u32,
}

/// The irq id of the sample's status posts.
const IRQ_ID: u32 = 1;

/// The userspace twin of the kernel's sample driver.
struct SampleDriver {
    registers: Mutex<[u32; REGISTERS]>,
    handle: Mutex<Option<Handle>>,
    /// The status counter of the irq posts; restarts at 1 on each bind.
    status: AtomicU32,
}

impl SimDriver for SampleDriver {
    fn bound(&self, handle: Handle) {
        self.status.store(0, Ordering::Relaxed);
        *self.handle.lock().unwrap() = Some(handle);
    }

    fn unbind(&self) {
        *self.handle.lock().unwrap() = None;
    }

    fn got(&self, msg: &mut Message) -> i32 {
        let Ok(mut m) = SampleMsg::read_from_bytes(msg.data()) else {
            return -EINVAL;
        };
        let mut regs = self.registers.lock().unwrap();
        let Some(reg) = regs.get_mut(m.a as usize) else {
            return -EINVAL;
        };
        match m.id {
            READ => m.b = *reg,
            WRITE => *reg = m.b,
            _ => return -EINVAL,
        }
        msg.set_reply(m.as_bytes()).map_or(-EINVAL, |()| 0)
    }
}

/// Starts the userspace sample driver with its irq timer.
fn start_sim_driver() -> (Transport, impl Drop) {
    let host = Arc::new(SimHost::new().expect("start a simulated host"));
    let driver = Arc::new(SampleDriver {
        registers: Mutex::new([0; REGISTERS]),
        handle: Mutex::new(None),
        status: AtomicU32::new(0),
    });
    host.register(UID.raw(), driver.clone())
        .expect("register the sample driver");
    let stop = Arc::new(AtomicBool::new(false));
    let timer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if let Some(h) = driver.handle.lock().unwrap().as_ref() {
                    // A full ring drops the notification (its number is
                    // still used, so gaps count drops), as the kernel's does.
                    let status = driver.status.fetch_add(1, Ordering::Relaxed) + 1;
                    let msg = SampleMsg {
                        id: IRQ,
                        a: IRQ_ID,
                        b: status,
                    };
                    let _ = h.post(msg.as_bytes());
                }
            }
        })
    };
    struct Running(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);
    impl Drop for Running {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
            if let Some(t) = self.1.take() {
                let _ = t.join();
            }
        }
    }
    (Transport::sim(&host), Running(stop, Some(timer)))
}

/// Prints irq notifications and checks their status counter only grows
/// (gaps are notifications a full ring dropped).
struct IrqPrinter {
    count: AtomicU32,
    last_status: AtomicU32,
    out_of_order: AtomicU32,
}

impl Listener for IrqPrinter {
    fn bound(&self, _: &ChannelHandle) {
        println!("channel bound");
    }

    fn unbound(&self, _: &ChannelHandle) {
        println!("channel unbound");
    }

    fn got(&self, _: &ChannelHandle, msg: &[u8]) -> i32 {
        match isc::decode::<SampleMsg>(msg) {
            Ok(m) if m.id == IRQ => {
                self.count.fetch_add(1, Ordering::Relaxed);
                // Listener callbacks run one at a time on the dispatcher.
                if self.last_status.swap(m.b, Ordering::Relaxed) >= m.b {
                    self.out_of_order.fetch_add(1, Ordering::Relaxed);
                }
                println!("irq {} status {}", m.a, m.b);
                0
            }
            _ => -EINVAL,
        }
    }
}

/// A small xorshift generator: random register values without a dependency.
fn random_values(n: usize) -> Vec<u32> {
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9E37_79B9_7F4A_7C15)
        | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u32
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let on_device = matches!(
        std::env::var("ISC_TRANSPORT").as_deref(),
        Ok("dev") | Ok("device")
    );
    let (transport, _driver) = if on_device {
        (Transport::device(), None)
    } else {
        let (t, running) = start_sim_driver();
        (t, Some(running))
    };
    println!(
        "opening {UID} on the {} transport",
        if on_device { "device" } else { "simulated" }
    );
    let channel = Channel::builder(UID)
        .u2k(12, 16)
        .k2u(12, 64)
        .transport(transport)
        .open()?;
    let irqs = Arc::new(IrqPrinter {
        count: AtomicU32::new(0),
        last_status: AtomicU32::new(0),
        out_of_order: AtomicU32::new(0),
    });
    channel.add_listener(irqs.clone())?;

    let values = random_values(32);
    let mut latencies = Vec::new();
    let mut call = |m: SampleMsg| -> Result<SampleMsg, Box<dyn std::error::Error>> {
        let start = Instant::now();
        let (rc, reply): (i32, SampleMsg) = channel.call_as(&m)?;
        latencies.push(start.elapsed());
        if rc != 0 {
            return Err(format!("call {:#x} on register {} failed with rc {rc}", m.id, m.a).into());
        }
        Ok(reply)
    };
    for (reg, &value) in values.iter().enumerate() {
        call(SampleMsg {
            id: WRITE,
            a: reg as u32,
            b: value,
        })?;
    }
    let mut mismatches = 0;
    for (reg, &value) in values.iter().enumerate() {
        let got = call(SampleMsg {
            id: READ,
            a: reg as u32,
            b: 0,
        })?
        .b;
        if got != value {
            mismatches += 1;
            eprintln!("register {reg}: wrote {value:#010x}, read {got:#010x}");
        }
    }
    // Give the irq timer time to fire a few times (it fires every 100 ms;
    // the limit only guards against a timer that never fires).
    let deadline = Instant::now() + Duration::from_secs(10);
    while irqs.count.load(Ordering::Relaxed) < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    channel.close();
    let notified = irqs.count.load(Ordering::Relaxed);
    let out_of_order = irqs.out_of_order.load(Ordering::Relaxed);
    let ok = mismatches == 0 && notified > 0 && out_of_order == 0;

    latencies.sort();
    println!(
        "{}: {} calls ({} registers written and read back, {} mismatches), round trip p50 {:.1} us p99 {:.1} us, {} irq notifications",
        if ok { "OK" } else { "FAILED" },
        latencies.len(),
        values.len(),
        mismatches,
        percentile(&latencies, 0.50).as_secs_f64() * 1e6,
        percentile(&latencies, 0.99).as_secs_f64() * 1e6,
        irqs.count.load(Ordering::Relaxed),
    );
    if mismatches != 0 {
        return Err("register values did not read back".into());
    }
    if notified == 0 {
        return Err("no irq notification arrived".into());
    }
    if out_of_order != 0 {
        return Err(format!("{out_of_order} irq notifications out of order").into());
    }
    Ok(())
}
