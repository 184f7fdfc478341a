//! RFC 3339 times as this API writes them.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Parses an RFC 3339 time: `2015-05-20T13:29:35+08:00`, fractional
/// seconds allowed, an offset (or `Z`) required.
pub fn parse_rfc3339(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// The offset the server writes times in: China Standard Time, as the
/// provider does.
pub const CHINA_STANDARD_TIME: UtcOffset = time::macros::offset!(+8);

/// Writes a time with milliseconds and a numeric offset, as the provider
/// does: `2020-05-20T13:29:35.120+08:00`.
pub fn format_rfc3339_millis(at: OffsetDateTime, offset: UtcOffset) -> String {
    let at = at.to_offset(offset);
    let (hours, minutes, _) = offset.as_hms();
    let sign = if offset.is_negative() { '-' } else { '+' };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}{sign}{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond(),
        hours.unsigned_abs(),
        minutes.unsigned_abs(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_accepts_offsets_fractions_and_z() {
        for text in [
            "2015-05-20T13:29:35+08:00",
            "2020-05-20T13:29:35.120+08:00",
            "2020-05-20T05:29:35Z",
            "2020-05-20T05:29:35.123456789-03:30",
        ] {
            assert!(parse_rfc3339(text).is_some(), "{text}");
        }
    }

    #[test]
    fn rfc3339_rejects_missing_offset_and_other_formats() {
        for text in [
            "2015-05-20T13:29:35",
            "2015-05-20 13:29:35+08:00x",
            "2015/05/20T13:29:35+08:00",
            "1554208460",
            "2015-13-20T13:29:35+08:00",
            "",
        ] {
            assert!(parse_rfc3339(text).is_none(), "{text}");
        }
    }

    #[test]
    fn times_are_written_with_milliseconds_and_offset() {
        let at = parse_rfc3339("2020-05-20T05:29:35.12Z").unwrap();
        assert_eq!(
            format_rfc3339_millis(at, CHINA_STANDARD_TIME),
            "2020-05-20T13:29:35.120+08:00"
        );
    }
}
