//! The simulated transport's bind handshake: any bytes, any descriptor
//! count. Decoding never panics, and a request that passes validation
//! always yields a geometry that fits the caps.
#![no_main]

use isc_ring::abi::{BindRequest, RingRequest, MAX_RING_BYTES, REGION_ALIGN};
use isc_ring::ChannelLayout;
use isc_transport_sim::wire::{decode_bind_reply, decode_bind_request, BIND_FDS};
use libfuzzer_sys::fuzz_target;

/// A request that passes validation yields exactly the geometry asked for,
/// within the caps.
fn check_layout(req: &BindRequest) {
    if let Ok(layout) = ChannelLayout::from_request(req) {
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

fuzz_target!(|input: (Vec<u8>, u8, [u32; 4])| {
    let (bytes, nfds, geometry) = input;
    if let Ok(req) = decode_bind_request(&bytes) {
        check_layout(&req);
    }
    // Valid requests are rare among random bytes: the same properties for
    // geometries near the caps, which the byte decoding seldom reaches.
    let [um, un, km, kn] = geometry.map(|v| if v & 1 == 0 { v % 70_000 } else { v });
    check_layout(&BindRequest::new(
        u32::from_le_bytes(*b"fz00"),
        RingRequest::new(um, un),
        RingRequest::new(km, kn),
    ));
    if let Ok(reply) = decode_bind_reply(&bytes, usize::from(nfds)) {
        assert!(reply.status >= 0);
        let expected = if reply.status == 0 { BIND_FDS } else { 0 };
        assert_eq!(usize::from(nfds), expected);
    }
});
