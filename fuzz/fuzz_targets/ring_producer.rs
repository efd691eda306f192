//! The producer over hostile memory: whatever the consumer side writes, the
//! producer never panics, never touches memory outside the ring, and never
//! reports a reply longer than `msz`.
#![no_main]

use arbitrary::Arbitrary;
use isc_fuzz::{Guarded, Scribble, Setup};
use isc_ring::{Producer, RingError};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
    Push { len: u16, flags: u32 },
    ReserveCommit { fill: u8, len: u16 },
    ReserveDrop,
    Publish,
    Completion { read_len: u16 },
    FreeSlots,
    PrepareWait,
    PrepareWaitForRelease { back: u8 },
    FinishWait,
    Scribble(Scribble),
    PublishDeferred,
    FlushWake,
    Chunk { n: u8, len: u16 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    setup: Setup,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let mut mem = Guarded::new(&input.setup);
    let (ptr, len) = (mem.ptr(), mem.len());
    // SAFETY: `mem` outlives the producer; scribbles model a concurrent peer.
    let Ok(mut tx) = (unsafe { Producer::new(ptr, len) }) else {
        mem.check_guards();
        return;
    };
    let msz = tx.msz() as usize;
    let msg = vec![0x5Au8; msz + 64];
    let mut buf = vec![0u8; msz + 64];
    let mut last_seq = 0u32;
    for op in input.ops {
        match op {
            Op::Push { len, flags } => {
                match tx.push(&msg[..usize::from(len).min(msg.len())], flags) {
                    Ok(seq) => last_seq = seq,
                    Err(RingError::TooLarge { .. }) => {
                        assert!(usize::from(len).min(msg.len()) > msz)
                    }
                    Err(_) => {}
                }
            }
            Op::ReserveCommit { fill, len } => {
                if let Ok(Some(mut slot)) = tx.reserve() {
                    let payload = slot.payload_mut();
                    assert_eq!(payload.len(), msz);
                    payload.fill(fill);
                    if let Ok(seq) = slot.commit(usize::from(len).min(msg.len()), 0) {
                        last_seq = seq;
                    }
                }
            }
            Op::ReserveDrop => {
                let _ = tx.reserve();
            }
            Op::Publish => {
                let _ = tx.publish();
            }
            Op::Completion { read_len } => {
                if let Ok(Some(done)) = tx.completion() {
                    assert!(done.reply_len() <= msz);
                    let n = done.read_reply(&mut buf[..usize::from(read_len).min(msz + 64)]);
                    assert!(n <= msz);
                }
            }
            Op::FreeSlots => {
                if let Ok(n) = tx.free_slots() {
                    assert!(n <= tx.slot_count());
                }
            }
            Op::PrepareWait => {
                let _ = tx.prepare_wait();
            }
            Op::PrepareWaitForRelease { back } => {
                let _ = tx.prepare_wait_for_release(last_seq.wrapping_sub(u32::from(back)));
            }
            Op::FinishWait => tx.finish_wait(),
            Op::Scribble(s) => mem.scribble(s),
            Op::PublishDeferred => {
                let _ = tx.publish_deferred();
            }
            Op::FlushWake => {
                let _ = tx.flush_wake();
                assert!(!tx.wake_owed());
            }
            Op::Chunk { n, len } => {
                if let Ok(mut chunk) = tx.write_chunk(u32::from(n)) {
                    assert!(chunk.remaining() <= u32::from(n));
                    let len = usize::from(len).min(msg.len());
                    while let Ok(seq) = chunk.push(&msg[..len], 0) {
                        last_seq = seq;
                    }
                }
            }
        }
    }
    drop(tx);
    mem.check_guards();
});
