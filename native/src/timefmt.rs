//! Timestamps as bridge/timefmt.py writes them: RFC 3339 with 0, 3, 6 or 9 fraction digits (the
//! shortest that is exact), or exact epoch numbers. Error texts are the Python transcoder's.

use crate::json;

const NANOS: i128 = 1_000_000_000;
const MIN: i64 = -62135596800;
const MAX: i64 = 253402300799;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Rfc3339,
    EpochS,
    EpochMs,
    EpochUs,
    EpochNs,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "rfc3339" => Mode::Rfc3339,
            "epoch_s" => Mode::EpochS,
            "epoch_ms" => Mode::EpochMs,
            "epoch_us" => Mode::EpochUs,
            "epoch_ns" => Mode::EpochNs,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Rfc3339 => "rfc3339",
            Mode::EpochS => "epoch_s",
            Mode::EpochMs => "epoch_ms",
            Mode::EpochUs => "epoch_us",
            Mode::EpochNs => "epoch_ns",
        }
    }

    fn divisor(self) -> i128 {
        match self {
            Mode::EpochMs => 1_000_000,
            Mode::EpochUs => 1000,
            _ => 1,
        }
    }
}

fn two(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

fn digits(out: &mut Vec<u8>, v: u32, n: usize) {
    let mut buf = [b'0'; 9];
    let mut x = v;
    for i in (0..n).rev() {
        buf[i] = b'0' + (x % 10) as u8;
        x /= 10;
    }
    out.extend_from_slice(&buf[..n]);
}

/// ``.fff``, ``.ffffff`` or ``.fffffffff`` for 0 < nanos < 1e9.
pub(crate) fn fraction(out: &mut Vec<u8>, nanos: u32) {
    out.push(b'.');
    if nanos.is_multiple_of(1_000_000) {
        digits(out, nanos / 1_000_000, 3);
    } else if nanos.is_multiple_of(1000) {
        digits(out, nanos / 1000, 6);
    } else {
        digits(out, nanos, 9);
    }
}

/// The proleptic Gregorian date of a day count from 1970-01-01 (Howard Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// RFC 3339 of whole seconds and nanos (already checked to be 0..1e9).
fn rfc3339(out: &mut Vec<u8>, seconds: i64, nanos: u32) -> Result<(), String> {
    if !(MIN..=MAX).contains(&seconds) {
        return Err(format!(
            "timestamp {seconds}s is outside 0001-01-01..9999-12-31"
        ));
    }
    let (y, m, d) = civil(seconds.div_euclid(86400));
    let s = seconds.rem_euclid(86400) as u32;
    out.push(b'"');
    digits(out, y as u32, 4);
    out.push(b'-');
    two(out, m);
    out.push(b'-');
    two(out, d);
    out.push(b'T');
    two(out, s / 3600);
    out.push(b':');
    two(out, s / 60 % 60);
    out.push(b':');
    two(out, s % 60);
    if nanos != 0 {
        fraction(out, nanos);
    }
    out.extend_from_slice(b"Z\"");
    Ok(())
}

/// Exact decimal seconds of a nanosecond count: an integer when whole.
fn epoch_seconds(out: &mut Vec<u8>, total: i128) {
    let whole = total.unsigned_abs() / NANOS as u128;
    let nanos = (total.unsigned_abs() % NANOS as u128) as u32;
    if total < 0 && (whole != 0 || nanos != 0) {
        out.push(b'-');
    }
    out.extend_from_slice(whole.to_string().as_bytes());
    if nanos != 0 {
        fraction(out, nanos);
    }
}

/// A `google.protobuf.Timestamp` value (bridge/timefmt.py ``formatter(mode)``).
pub fn timestamp(out: &mut Vec<u8>, mode: Mode, seconds: i64, nanos: i32) -> Result<(), String> {
    if !(0..1_000_000_000).contains(&nanos) {
        return Err(format!("timestamp nanos {nanos} is outside 0..999999999"));
    }
    let n = nanos as u32;
    match mode {
        Mode::Rfc3339 => rfc3339(out, seconds, n),
        Mode::EpochS => {
            if n == 0 {
                json::int(out, seconds);
            } else {
                epoch_seconds(out, i128::from(seconds) * NANOS + i128::from(n));
            }
            Ok(())
        }
        _ => {
            let v = (i128::from(seconds) * NANOS + i128::from(n)).div_euclid(mode.divisor());
            match i64::try_from(v) {
                Ok(x) => {
                    json::int(out, x);
                    Ok(())
                }
                Err(_) => Err(format!(
                    "timestamp {seconds}s {nanos}ns does not fit an int64 in {}",
                    mode.name()
                )),
            }
        }
    }
}

/// One Unix-nanosecond instant of a timestamp column (bridge/timefmt.py ``format_nanos``); the error is
/// without the column's name.
pub fn nanos(out: &mut Vec<u8>, mode: Mode, x: i64) -> Result<(), String> {
    match mode {
        Mode::EpochNs => json::int(out, x),
        Mode::EpochS => epoch_seconds(out, i128::from(x)),
        Mode::EpochMs | Mode::EpochUs => json::int(out, x.div_euclid(mode.divisor() as i64)),
        Mode::Rfc3339 => {
            return rfc3339(
                out,
                x.div_euclid(1_000_000_000),
                x.rem_euclid(1_000_000_000) as u32,
            )
        }
    }
    Ok(())
}

/// The range of google.protobuf.Duration, in seconds.
const MAX_DURATION: i64 = 315_576_000_000;

/// A `google.protobuf.Duration` as protobuf's JSON, ``"-1.500s"`` (bridge/descriptors.py ``duration``).
pub fn duration(out: &mut Vec<u8>, seconds: i64, nanos: i32) -> Result<(), String> {
    if !(-MAX_DURATION..=MAX_DURATION).contains(&seconds)
        || !(-999_999_999..=999_999_999).contains(&nanos)
        || (seconds < 0 && nanos > 0)
        || (seconds > 0 && nanos < 0)
    {
        return Err(format!(
            "duration {seconds}s {nanos}ns is not a valid google.protobuf.Duration"
        ));
    }
    out.push(b'"');
    if seconds < 0 || nanos < 0 {
        out.push(b'-');
    }
    json::uint(out, seconds.unsigned_abs());
    if nanos != 0 {
        fraction(out, nanos.unsigned_abs());
    }
    out.extend_from_slice(b"s\"");
    Ok(())
}
