//! The facade's typed-message decoding: any bytes either decode to a value
//! that encodes back to the same bytes, or fail with `BadLength`.
#![no_main]

use isc::testdrv::{echo, ControlMsg};
use libfuzzer_sys::fuzz_target;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Debug)]
#[repr(C)]
struct Sample {
    id: u32,
    a: u32,
    b: u32,
}

fn roundtrip<T: FromBytes + IntoBytes + KnownLayout + Immutable>(bytes: &[u8]) {
    match isc::decode::<T>(bytes) {
        Ok(v) => assert_eq!(v.as_bytes(), bytes),
        Err(isc::Error::BadLength { len, expected }) => {
            assert_eq!(len, bytes.len());
            assert_ne!(len, expected);
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

fuzz_target!(|bytes: &[u8]| {
    roundtrip::<Sample>(bytes);
    roundtrip::<ControlMsg>(bytes);
    roundtrip::<u32>(bytes);
    roundtrip::<[u8; 64]>(bytes);
    // The echo driver's handling of a message never panics and keeps its length.
    let mut msg = bytes.to_vec();
    let (_, delay) = echo(&mut msg);
    assert_eq!(msg.len(), bytes.len());
    assert!(delay.as_millis() <= 2000);
});
