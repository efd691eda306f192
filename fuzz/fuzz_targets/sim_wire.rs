//! The simulated transport's bind handshake: any bytes, any descriptor
//! count. Decoding never panics, and a request that passes validation
//! always yields a geometry that fits the caps.
#![no_main]

use isc_ring::abi::{MAX_RING_BYTES, REGION_ALIGN};
use isc_ring::ChannelLayout;
use isc_transport_sim::wire::{decode_bind_reply, decode_bind_request, BIND_FDS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<u8>, u8)| {
    let (bytes, nfds) = input;
    if let Ok(req) = decode_bind_request(&bytes) {
        if let Ok(layout) = ChannelLayout::from_request(&req) {
            for (ring, asked) in [(layout.u2k(), req.u2k), (layout.k2u(), req.k2u)] {
                assert!(ring.ring_bytes() <= MAX_RING_BYTES);
                assert_eq!(ring.ring_bytes() % REGION_ALIGN, 0);
                // Exactly what was asked for: the message size, and the
                // smallest power of two that holds `num` messages.
                assert_eq!(ring.msz(), asked.msz);
                assert_eq!(ring.slot_count(), asked.num.next_power_of_two());
            }
            assert_eq!(layout.k2u_offset(), layout.u2k().ring_bytes());
        }
    }
    if let Ok(reply) = decode_bind_reply(&bytes, usize::from(nfds)) {
        assert!(reply.status >= 0);
        let expected = if reply.status == 0 { BIND_FDS } else { 0 };
        assert_eq!(usize::from(nfds), expected);
    }
});
