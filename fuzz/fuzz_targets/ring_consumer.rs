//! The consumer over hostile memory: whatever the producer side writes, the
//! consumer never panics, never touches memory outside the ring, and never
//! hands out a message longer than `msz`.
#![no_main]

use arbitrary::Arbitrary;
use isc_fuzz::{Guarded, Scribble, Setup};
use isc_ring::Consumer;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
    Peek { read_len: u16 },
    Complete { rc: i32, reply_len: u16 },
    CompleteRc { rc: i32 },
    Release,
    Pending,
    PrepareWait,
    FinishWait,
    Scribble(Scribble),
    ReleaseDeferred,
    FlushWake,
    Consume,
    Chunk { n: u8, read_len: u16, consume: bool },
}

#[derive(Arbitrary, Debug)]
struct Input {
    setup: Setup,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let mut mem = Guarded::new(&input.setup);
    let (ptr, len) = (mem.ptr(), mem.len());
    // SAFETY: `mem` outlives the consumer; scribbles model a concurrent peer.
    let Ok(mut rx) = (unsafe { Consumer::new(ptr, len) }) else {
        mem.check_guards();
        return;
    };
    let msz = rx.msz() as usize;
    let mut buf = vec![0u8; msz + 64];
    for op in input.ops {
        match op {
            Op::Peek { read_len } => {
                if let Ok(Some(msg)) = rx.peek() {
                    assert!(msg.len() <= msz);
                    let n = msg.read(&mut buf[..usize::from(read_len).min(msz + 64)]);
                    assert!(n <= msz && n <= usize::from(read_len).min(msz + 64));
                }
            }
            Op::Complete { rc, reply_len } => {
                if let Ok(Some(msg)) = rx.peek() {
                    let r = msg.complete(rc, &buf[..usize::from(reply_len).min(msz + 64)]);
                    assert_eq!(r.is_ok(), usize::from(reply_len).min(msz + 64) <= msz);
                }
            }
            Op::CompleteRc { rc } => {
                if let Ok(Some(msg)) = rx.peek() {
                    msg.complete_rc(rc);
                }
            }
            Op::Release => {
                let _ = rx.release();
            }
            Op::Pending => {
                if let Ok(n) = rx.pending() {
                    assert!(n <= rx.slot_count());
                }
            }
            Op::PrepareWait => {
                let _ = rx.prepare_wait();
            }
            Op::FinishWait => rx.finish_wait(),
            Op::Scribble(s) => mem.scribble(s),
            Op::ReleaseDeferred => {
                let _ = rx.release_deferred();
            }
            Op::FlushWake => {
                let _ = rx.flush_wake();
                assert!(!rx.wake_owed());
            }
            Op::Consume => {
                if let Ok(Some(msg)) = rx.peek() {
                    msg.consume();
                }
            }
            Op::Chunk {
                n,
                read_len,
                consume,
            } => {
                if let Ok(mut chunk) = rx.read_chunk(u32::from(n)) {
                    assert!(chunk.remaining() <= u32::from(n));
                    let read_len = usize::from(read_len).min(msz + 64);
                    while let Ok(Some(msg)) = chunk.next_message() {
                        assert!(msg.len() <= msz);
                        assert!(msg.read(&mut buf[..read_len]) <= msz);
                        if consume {
                            msg.consume();
                        } else {
                            msg.complete_rc(0);
                        }
                    }
                }
            }
        }
    }
    drop(rx);
    mem.check_guards();
});
