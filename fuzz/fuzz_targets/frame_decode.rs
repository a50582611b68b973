//! Arbitrary bytes on a worker socket: the frame reader and the worker
//! protocol decoders must return errors, never panic, hang or allocate
//! without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let frames = procpool::__fuzz_decode_frame(data);
    // Each whole frame takes at least its 4-byte length prefix.
    assert!(frames <= data.len() / 4);
});
