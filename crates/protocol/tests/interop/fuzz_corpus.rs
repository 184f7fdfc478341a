//! The fuzz corpus (`fuzz/corpus/<target>/`), replayed through the fuzz
//! targets' own checks on every test run: the short smoke of the fuzzing
//! that `.ci/run` can afford (the long runs need nightly and cargo-fuzz;
//! see RELIABILITY.md).

use std::path::Path;

use card_member_protocol::fuzzing;

use crate::wechatpay_public;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert!(!inputs.is_empty(), "{target} has a corpus");
    // Prefixes too (16 per input): truncated inputs are the classic parser crash.
    let prefixes: Vec<Vec<u8>> = inputs
        .iter()
        .flat_map(|input| (0..16).map(|k| input[..input.len() * k / 16].to_vec()))
        .collect();
    inputs.extend(prefixes);
    inputs
}

#[test]
fn authorization_header_corpus_replays_cleanly() {
    corpus("authorization_header")
        .iter()
        .for_each(|input| fuzzing::authorization_header(input));
}

#[test]
fn update_body_corpus_replays_cleanly() {
    corpus("update_body")
        .iter()
        .for_each(|input| fuzzing::update_body(input));
}

#[test]
fn signing_message_corpus_replays_cleanly() {
    corpus("signing_message")
        .iter()
        .for_each(|input| fuzzing::signing_message(input));
}

#[test]
fn response_verification_corpus_replays_cleanly() {
    let key = wechatpay_public();
    corpus("response_verification")
        .iter()
        .for_each(|input| fuzzing::response_verification(input, &key));
}
