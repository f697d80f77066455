//! Rows against a route's declared columns, as bridge/transcode/validate.py checks them.
//!
//! A cell is checked on the JSON text the decoder wrote for it: that text says which Python value the
//! Python transcoder holds there (null: None, true/false: bool, an integer: int, another number: float, a
//! string: str, an array or object: list or dict), so the checks are the Python ones on that value. A
//! failing cell is reported with its text; the Python side writes the reason (it shows the value with
//! ``repr``). Where the Python answer is not certain from the text, the request goes to Python.

/// A declared column's type (bridge/model/config.py ``ColumnSpec.type``).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    Int,
    Uint,
    Double,
    Bool,
    Str,
    Bytes,
    Timestamp,
    Json,
}

impl Ty {
    pub fn parse(s: &str) -> Option<Ty> {
        Some(match s {
            "int" => Ty::Int,
            "uint" => Ty::Uint,
            "double" => Ty::Double,
            "bool" => Ty::Bool,
            "string" => Ty::Str,
            "bytes" => Ty::Bytes,
            "timestamp" => Ty::Timestamp,
            "json" => Ty::Json,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug)]
pub struct Spec {
    pub name: Vec<u8>,
    pub ty: Ty,
    pub nullable: bool,
}

/// The declared columns; `drop`: a column they do not hold is left out (``unknown_columns: drop``).
#[derive(Clone, Debug, Default)]
pub struct Schema {
    pub specs: Vec<Spec>,
    pub drop: bool,
}

/// Why a cell fails.
#[derive(Debug, PartialEq, Eq)]
pub enum Problem {
    /// null in a column that is not nullable.
    Null,
    /// Not what the column expects.
    Type,
    /// The Python transcoder must say (its answer is not certain from the text).
    Python,
}

impl Schema {
    /// Each batch column's spec (its index in `specs`), None where it is dropped; None overall where
    /// the Python transcoder rejects the batch whole (an undeclared column it does not drop, a declared
    /// column that is not nullable missing).
    pub fn resolve(&self, names: &[&[u8]]) -> Option<Vec<Option<usize>>> {
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            match self.specs.iter().position(|s| s.name == *n) {
                Some(i) => out.push(Some(i)),
                None if self.drop => out.push(None),
                None => return None,
            }
        }
        for (i, s) in self.specs.iter().enumerate() {
            if !s.nullable && !out.contains(&Some(i)) {
                return None;
            }
        }
        Some(out)
    }
}

fn is_integer(t: &[u8]) -> bool {
    let d = t.strip_prefix(b"-").unwrap_or(t);
    !d.is_empty() && d.iter().all(u8::is_ascii_digit) && (d[0] != b'0' || d.len() == 1)
}

/// A string cell's characters when they hold no escape (RFC 3339 and base64 text never does).
fn plain_string(t: &[u8]) -> Option<&[u8]> {
    let inner = &t[1..t.len() - 1];
    if inner.contains(&b'\\') {
        None
    } else {
        Some(inner)
    }
}

/// Python's ``is_rfc3339`` (bridge/transcode/validate.py): the pattern, then a real calendar date.
pub fn is_rfc3339(s: &[u8]) -> bool {
    fn num(s: &[u8]) -> Option<u32> {
        if s.iter().all(u8::is_ascii_digit) {
            Some(s.iter().fold(0, |a, &c| a * 10 + u32::from(c - b'0')))
        } else {
            None
        }
    }
    if s.len() < 20 {
        return false;
    }
    let fixed = |i: usize, c: u8| s[i] == c;
    if !(fixed(4, b'-') && fixed(7, b'-') && (fixed(10, b'T') || fixed(10, b't')))
        || !(fixed(13, b':') && fixed(16, b':'))
    {
        return false;
    }
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(sec)) = (
        num(&s[0..4]),
        num(&s[5..7]),
        num(&s[8..10]),
        num(&s[11..13]),
        num(&s[14..16]),
        num(&s[17..19]),
    ) else {
        return false;
    };
    let mut i = 19;
    if s[i] == b'.' {
        let digits = s[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        i += 1 + digits;
    }
    let zone = &s[i..];
    let zone_ok = match zone {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', a, b, b':', c, d] => match (num(&[*a, *b]), num(&[*c, *d])) {
            (Some(oh), Some(om)) => oh <= 23 && om <= 59,
            _ => false,
        },
        _ => false,
    };
    if !zone_ok || y == 0 || !(1..=12).contains(&mo) || h > 23 || mi > 59 || sec > 59 {
        return false;
    }
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days = match mo {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    (1..=days).contains(&d)
}

/// Base64 that Python's ``b64decode(s, validate=True)`` surely decodes: the standard alphabet in whole
/// quads, at most two `=` at the end. Some other text decodes there too: None (Python says).
fn canonical_base64(s: &[u8]) -> Option<bool> {
    let pad = s.iter().rev().take_while(|&&c| c == b'=').count();
    let data = &s[..s.len() - pad];
    if !data
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
    {
        // A character outside the alphabet (and not trailing padding): refused with validate=True.
        return if s.iter().all(|&c| c.is_ascii() && c != b'=') {
            Some(false)
        } else {
            None
        };
    }
    if s.len().is_multiple_of(4) && pad <= 2 {
        Some(true)
    } else {
        None
    }
}

/// The integer a cell's text holds, if it is one in i128 (every integer the decoder writes is).
fn integer(t: &[u8]) -> Option<i128> {
    if is_integer(t) && t.len() <= 21 {
        std::str::from_utf8(t).ok()?.parse().ok()
    } else {
        None
    }
}

/// Check one cell's JSON text against its column. `rfc`: a timestamp column holds RFC 3339 text
/// (the route's ``timestamps`` is rfc3339, or the column is one the target reads only so); `epoch_s`:
/// the route writes epoch seconds (then a number with a fraction may be Python's orjson.Fragment,
/// which ``repr`` cannot show alike: a failure there is Python's to word).
pub fn check(spec: &Spec, t: &[u8], rfc: bool, epoch_s: bool) -> Result<(), Problem> {
    if t == b"null" {
        return if spec.nullable {
            Ok(())
        } else {
            Err(Problem::Null)
        };
    }
    let first = t[0];
    let number = first == b'-' || first.is_ascii_digit();
    let int = if number { integer(t) } else { None };
    let ok = match spec.ty {
        Ty::Json => true,
        Ty::Int => matches!(int, Some(v) if (-(1i128 << 63)..(1i128 << 63)).contains(&v)),
        Ty::Uint => matches!(int, Some(v) if (0..(1i128 << 64)).contains(&v)),
        Ty::Double => number,
        Ty::Bool => t == b"true" || t == b"false",
        Ty::Str => first == b'"',
        Ty::Bytes => {
            if first != b'"' {
                false
            } else {
                match plain_string(t).map(canonical_base64) {
                    Some(Some(v)) => v,
                    // An escape: a control character, a quote or a backslash, outside the alphabet.
                    None => false,
                    Some(None) => return Err(Problem::Python),
                }
            }
        }
        Ty::Timestamp if rfc => first == b'"' && plain_string(t).is_some_and(is_rfc3339),
        Ty::Timestamp if epoch_s => number,
        Ty::Timestamp => int.is_some(),
    };
    if ok {
        return Ok(());
    }
    if epoch_s && ((number && int.is_none()) || first == b'[' || first == b'{') {
        return Err(Problem::Python);
    }
    Err(Problem::Type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_as_python_reads_it() {
        for s in [
            "2024-02-29T23:59:59Z",
            "0001-01-01T00:00:00.5+23:59",
            "9999-12-31t00:00:00z",
        ] {
            assert!(is_rfc3339(s.as_bytes()), "{s}");
        }
        for s in [
            "2023-02-29T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+24:00",
            "0000-01-01T00:00:00Z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:60Z",
        ] {
            assert!(!is_rfc3339(s.as_bytes()), "{s}");
        }
    }

    #[test]
    fn base64_certain_or_python() {
        assert_eq!(canonical_base64(b"AQ=="), Some(true));
        assert_eq!(canonical_base64(b""), Some(true));
        assert_eq!(canonical_base64(b"a b"), Some(false));
        assert_eq!(canonical_base64(b"AAAA="), None);
        assert_eq!(canonical_base64(b"YQ"), None);
    }
}
