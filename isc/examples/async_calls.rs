//! Async calls and events on tokio (`--features tokio`): 32 register writes
//! in flight at once on one task, read back concurrently, while another
//! task prints the driver's irq posts from the event stream.
//!
//! By default the sample register driver is hosted in this process on the
//! simulated transport; with `ISC_TRANSPORT=dev` it is `isc_sample.ko`.
//!
//! `cargo run -p isc --example async_calls --features tokio`

use futures::StreamExt;
use isc::{Channel, Event, Transport, Uid};
use std::sync::Arc;
use std::time::Duration;

const UID: Uid = Uid::fourcc(*b"sam0");

fn msg(id: u32, a: u32, b: u32) -> [u8; 12] {
    let mut m = [0u8; 12];
    m[0..4].copy_from_slice(&id.to_ne_bytes());
    m[4..8].copy_from_slice(&a.to_ne_bytes());
    m[8..12].copy_from_slice(&b.to_ne_bytes());
    m
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _host;
    let transport = match std::env::var("ISC_TRANSPORT").as_deref() {
        Ok("dev") | Ok("device") => Transport::device(),
        _ => {
            let host = Arc::new(isc::sim::SimHost::new()?);
            let driver = Arc::new(isc::sim::sample::RegisterDriver::new());
            host.register(UID.raw(), driver.clone())?;
            // The timer lives as long as this binding of the example.
            let timer = driver.start_irq(Duration::from_millis(20));
            _host = (host.clone(), timer);
            Transport::sim(&host)
        }
    };
    let channel = Channel::builder(UID)
        .u2k(12, 32)
        .k2u(12, 16)
        .transport(transport)
        .open()?;

    // The events, on their own task.
    let mut events = channel.event_stream()?;
    let printer = tokio::spawn(async move {
        let mut irqs = 0;
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Message(m)) if irqs < 3 => {
                    irqs += 1;
                    println!("irq post: {:?}", m.bytes());
                }
                Ok(Event::Message(_)) => break,
                Ok(other) => println!("event: {other:?}"),
                Err(e) => {
                    println!("event stream: {e}");
                    break;
                }
            }
        }
    });

    // 32 writes in flight at once, then 32 reads.
    let writes: Vec<[u8; 12]> = (0..32).map(|r| msg(2, r, r * 7 + 1)).collect();
    for r in futures::future::join_all(writes.iter().map(|m| channel.call_async(m))).await {
        assert_eq!(r?.0, 0);
    }
    let reads: Vec<[u8; 12]> = (0..32).map(|r| msg(1, r, 0)).collect();
    let mut mismatches = 0;
    for (r, reply) in futures::future::join_all(reads.iter().map(|m| channel.call_async(m)))
        .await
        .into_iter()
        .enumerate()
    {
        let (rc, reply) = reply?;
        let value = u32::from_ne_bytes(reply[8..12].try_into()?);
        if rc != 0 || value != r as u32 * 7 + 1 {
            mismatches += 1;
        }
    }
    println!("32 writes and 32 reads in flight at once, {mismatches} mismatches");
    tokio::time::timeout(Duration::from_secs(5), printer)
        .await
        .ok();
    if mismatches == 0 {
        Ok(())
    } else {
        Err("register mismatch".into())
    }
}
