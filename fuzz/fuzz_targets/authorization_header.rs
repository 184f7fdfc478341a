#![no_main]

libfuzzer_sys::fuzz_target!(
    |data: &[u8]| card_member_protocol::fuzzing::authorization_header(data)
);
