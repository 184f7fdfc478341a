use super::*;

#[test]
fn a_nonce_is_accepted_once_per_brand() {
    let guard = ReplayGuard::default();
    assert!(guard.first_use("a", "n", 1000, 1000));
    assert!(!guard.first_use("a", "n", 1000, 1200));
    assert!(guard.first_use("b", "n", 1000, 1000));
}

#[test]
fn a_nonce_is_forgotten_once_its_timestamp_is_stale() {
    let guard = ReplayGuard::default();
    assert!(guard.first_use("a", "n", 1000, 1000));
    assert!(guard.first_use("a", "n", 1400, 1400));
}

#[test]
fn a_remembered_nonce_is_refused_until_it_expires() {
    let guard = ReplayGuard::default();
    guard.remember("a".into(), "n".into(), 1300);
    assert!(!guard.first_use("a", "n", 1100, 1100));
    assert!(guard.first_use("a", "n", 1400, 1400));
}
