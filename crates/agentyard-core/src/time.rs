//! Timestamps (milliseconds since the Unix epoch, RFC 3339 UTC on the wire) and injectable clocks.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time with millisecond precision. Serialized as RFC 3339 UTC, e.g.
/// `2026-11-22T07:33:35.123Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    pub fn add_millis(self, ms: u64) -> Self {
        Self(self.0.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)))
    }

    /// Milliseconds from `earlier` to `self`, zero if `earlier` is later.
    pub fn millis_since(self, earlier: Timestamp) -> u64 {
        u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0)
    }

    /// Parses any RFC 3339 time. The form this type writes (`2026-11-22T07:33:35.123Z`) takes a
    /// fast path; every other form (offsets, other precisions) goes through chrono.
    pub fn parse_rfc3339(s: &str) -> Result<Self, chrono::ParseError> {
        if let Some(t) = parse_canonical(s.as_bytes()) {
            return Ok(t);
        }
        Ok(Self(DateTime::parse_from_rfc3339(s)?.timestamp_millis()))
    }

    pub fn to_rfc3339(self) -> String {
        let mut buf = [0; CANONICAL_LEN];
        match self.format_canonical(&mut buf) {
            Some(s) => s.to_owned(),
            None => self.to_rfc3339_chrono(),
        }
    }

    fn to_rfc3339_chrono(self) -> String {
        DateTime::<Utc>::from_timestamp_millis(self.0)
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// Writes `YYYY-MM-DDTHH:MM:SS.mmmZ` into `buf` with no allocation (a task carries four or
    /// five timestamps, written on every change and every answer); `None` outside years
    /// 0000–9999, which chrono formats.
    fn format_canonical(self, buf: &mut [u8; CANONICAL_LEN]) -> Option<&str> {
        let days = self.0.div_euclid(MS_PER_DAY);
        let ms_of_day = self.0.rem_euclid(MS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        if !(0..=9999).contains(&year) {
            return None;
        }
        let (hour, minute) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60);
        let (second, milli) = (ms_of_day / 1_000 % 60, ms_of_day % 1_000);
        let mut put = |at: usize, value: i64, width: usize| {
            let mut v = value;
            for i in (0..width).rev() {
                buf[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, year, 4);
        put(5, i64::from(month), 2);
        put(8, i64::from(day), 2);
        put(11, hour, 2);
        put(14, minute, 2);
        put(17, second, 2);
        put(20, milli, 3);
        for (at, c) in SEPARATORS {
            buf[at] = c;
        }
        std::str::from_utf8(buf).ok()
    }
}

const MS_PER_DAY: i64 = 86_400_000;
const CANONICAL_LEN: usize = 24;

/// Where `YYYY-MM-DDTHH:MM:SS.mmmZ` has its separators.
const SEPARATORS: [(usize, u8); 7] = [
    (4, b'-'),
    (7, b'-'),
    (10, b'T'),
    (13, b':'),
    (16, b':'),
    (19, b'.'),
    (23, b'Z'),
];

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day counted from 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Reads exactly `YYYY-MM-DDTHH:MM:SS.mmmZ` with a valid date and time; `None` for anything
/// else (which may still be valid RFC 3339, for chrono to read).
fn parse_canonical(s: &[u8]) -> Option<Timestamp> {
    if s.len() != CANONICAL_LEN {
        return None;
    }
    for (at, c) in SEPARATORS {
        if s[at] != c {
            return None;
        }
    }
    let num = |at: usize, width: usize| -> Option<u32> {
        s[at..at + width]
            .iter()
            .try_fold(0u32, |n, &b| b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0')))
    };
    let (year, month, day) = (i64::from(num(0, 4)?), num(5, 2)?, num(8, 2)?);
    let (hour, minute, second, milli) = (num(11, 2)?, num(14, 2)?, num(17, 2)?, num(20, 3)?);
    if !(1..=12).contains(&month) || day == 0 || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // A day past the month's end (2026-02-30) comes back as another date.
    if civil_from_days(days) != (year, month, day) {
        return None;
    }
    let ms = i64::from(((hour * 60 + minute) * 60 + second) * 1_000 + milli);
    Some(Timestamp(days * MS_PER_DAY + ms))
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0; CANONICAL_LEN];
        match self.format_canonical(&mut buf) {
            Some(s) => f.write_str(s),
            None => f.write_str(&self.to_rfc3339_chrono()),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0; CANONICAL_LEN];
        match self.format_canonical(&mut buf) {
            Some(text) => s.serialize_str(text),
            None => s.serialize_str(&self.to_rfc3339_chrono()),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Rfc3339;

        impl serde::de::Visitor<'_> for Rfc3339 {
            type Value = Timestamp;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 time, e.g. 2026-01-31T12:00:00Z")
            }

            // Borrowed or not, the text is read in place: no String per timestamp.
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(s).map_err(|e| {
                    E::custom(format!(
                        "invalid timestamp {s:?}: {e} (expected RFC 3339, e.g. 2026-01-31T12:00:00Z)"
                    ))
                })
            }
        }

        d.deserialize_str(Rfc3339)
    }
}

/// Where "now" comes from. Injected so lease and backoff logic can be tested without sleeping.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp(Utc::now().timestamp_millis())
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(start.0)))
    }

    pub fn advance(&self, ms: u64) {
        self.0
            .fetch_add(i64::try_from(ms).unwrap_or(i64::MAX), Ordering::SeqCst);
    }

    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast formatter and parser agree with chrono, over a wide spread of instants
    /// (including leap days, century years and the ends of the four-digit years).
    #[test]
    fn canonical_form_matches_chrono() {
        let mut instants = vec![
            0,
            -1,
            1,
            951_782_400_000,     // 2000-02-29
            4_107_542_400_000,   // 2100-03-01
            -62_167_219_200_000, // 0000-01-01
            253_402_300_799_999, // 9999-12-31T23:59:59.999
            1_795_000_000_123,
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let span = 253_402_300_800_000i64 + 62_167_219_200_000;
            instants.push((x % span as u64) as i64 - 62_167_219_200_000);
        }
        for ms in instants {
            let t = Timestamp::from_millis(ms);
            let fast = t.to_rfc3339();
            assert_eq!(fast, t.to_rfc3339_chrono(), "formatting {ms}");
            assert_eq!(parse_canonical(fast.as_bytes()), Some(t), "parsing {fast}");
            let chrono = DateTime::parse_from_rfc3339(&fast)
                .expect("chrono reads it")
                .timestamp_millis();
            assert_eq!(chrono, ms, "chrono reads {fast} back");
        }
    }

    #[test]
    fn impossible_dates_are_left_to_chrono_and_refused() {
        for bad in [
            "2026-02-30T00:00:00.000Z",
            "2026-13-01T00:00:00.000Z",
            "2026-00-10T00:00:00.000Z",
            "2026-01-01T24:00:00.000Z",
            "2026-01-01T00:60:00.000Z",
            "2026-01-01T00:00:00.00xZ",
        ] {
            assert_eq!(parse_canonical(bad.as_bytes()), None, "{bad}");
            assert!(Timestamp::parse_rfc3339(bad).is_err(), "{bad}");
        }
        // Other RFC 3339 forms still parse, through chrono.
        assert_eq!(
            Timestamp::parse_rfc3339("2026-01-31T13:00:00+01:00").expect("offset"),
            Timestamp::parse_rfc3339("2026-01-31T12:00:00.000Z").expect("canonical")
        );
        assert_eq!(
            Timestamp::parse_rfc3339("1970-01-01T00:00:01Z").expect("no fraction"),
            Timestamp::from_millis(1_000)
        );
        assert_eq!(
            Timestamp::parse_rfc3339("1970-01-01 00:00:01.000Z").expect("a space for the T"),
            Timestamp::from_millis(1_000)
        );
    }

    #[test]
    fn serde_reads_borrowed_and_escaped_text() {
        let t: Timestamp = serde_json::from_str("\"2026-01-31T12:00:00.000Z\"").expect("borrowed");
        // An escaped character makes serde_json hand over an owned string.
        let u: Timestamp = serde_json::from_str("\"2026-01-31T12:00:00.000\\u005a\"").expect("owned");
        assert_eq!(t, u);
        assert_eq!(serde_json::to_string(&t).expect("json"), "\"2026-01-31T12:00:00.000Z\"");
        let err = serde_json::from_str::<Timestamp>("\"yesterday\"").expect_err("refused");
        assert!(err.to_string().contains("invalid timestamp \"yesterday\""), "{err}");
    }

    #[test]
    fn round_trips_through_rfc3339() {
        let t = Timestamp::from_millis(1_795_000_000_123);
        let s = serde_json::to_string(&t).unwrap();
        assert_eq!(s, "\"2026-11-18T11:06:40.123Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&s).unwrap(), t);
        let offset: Timestamp = serde_json::from_str("\"2026-11-18T12:06:40.123+01:00\"").unwrap();
        assert_eq!(offset, t);
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }
}
