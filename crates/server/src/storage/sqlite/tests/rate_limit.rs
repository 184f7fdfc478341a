use super::*;

#[test]
fn a_burst_of_five_passes_and_the_sixth_waits_200ms() {
    let limiter = RateLimiter::default();
    let start = Instant::now();
    for _ in 0..5 {
        assert_eq!(limiter.check("b", "PATCH u", 5, start), Ok(()));
    }
    let wait = limiter.check("b", "PATCH u", 5, start).unwrap_err();
    assert_eq!(wait, Duration::from_millis(200));
    assert_eq!(limiter.check("b", "PATCH u", 5, start + wait), Ok(()));
}

#[test]
fn refused_requests_do_not_use_up_the_bucket() {
    let limiter = RateLimiter::default();
    let start = Instant::now();
    for _ in 0..5 {
        limiter.check("b", "PATCH u", 5, start).unwrap();
    }
    for _ in 0..100 {
        assert!(limiter.check("b", "PATCH u", 5, start).is_err());
    }
    assert_eq!(
        limiter.check("b", "PATCH u", 5, start + Duration::from_millis(200)),
        Ok(())
    );
}

#[test]
fn sustained_rate_is_five_per_second() {
    let limiter = RateLimiter::default();
    let start = Instant::now();
    let accepted = (0..1000)
        .filter(|i| {
            limiter
                .check("b", "PATCH u", 5, start + Duration::from_millis(10 * i))
                .is_ok()
        })
        .count();
    // 10 s offered at 100/s: the burst of 5 at once, then one every
    // 200 ms from 200 ms to 9800 ms; never more than 5/s plus the burst.
    assert_eq!(accepted, 5 + 49);
}

#[test]
fn brands_and_endpoints_have_their_own_buckets() {
    let limiter = RateLimiter::default();
    let now = Instant::now();
    for _ in 0..5 {
        limiter.check("a", "PATCH u", 5, now).unwrap();
    }
    assert!(limiter.check("a", "PATCH u", 5, now).is_err());
    assert_eq!(limiter.check("b", "PATCH u", 5, now), Ok(()));
    for _ in 0..10 {
        assert_eq!(limiter.check("a", "POST i", 10, now), Ok(()));
    }
    assert!(limiter.check("a", "POST i", 10, now).is_err());
}
