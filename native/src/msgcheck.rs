//! Whether upb parses a caller's message, read as upb reads it: field by field in wire order, so that the
//! first problem is the one upb names. A message that upb would parse in a way the writer in
//! `message` does not follow (a message field given twice, which upb merges; a group; a number a closed
//! enum does not define; nesting near upb's limit) is the Python transcoder's.

use crate::plan::{packable, wire_type, Card, Plan, Special, BYTES, ENUM, GROUP, MESSAGE, STRING};
use crate::wire::{Reader, FIXED32, FIXED64, LEN, VARINT};

/// Nesting taken natively; upb refuses past 100 levels.
const MAX_NESTING: u32 = 64;

pub(crate) enum Problem {
    /// upb refuses the message with this reason.
    Corrupt(&'static str),
    /// The Python transcoder decides the request.
    Fallback,
}

const CORRUPT: Problem = Problem::Corrupt("Wire format was corrupt");
const BAD_UTF8: Problem = Problem::Corrupt("String field had bad UTF-8");

type P<T> = Result<T, Problem>;

/// A field's number and wire type; groups and tags written in more than five bytes are left to Python.
#[inline]
pub(crate) fn tag(r: &mut Reader<'_>) -> P<(u32, u8)> {
    let start = r.pos();
    let t = r.varint_wide().ok_or(CORRUPT)?;
    if r.pos() - start > 5 {
        return Err(Problem::Fallback);
    }
    let t = u32::try_from(t).map_err(|_| CORRUPT)?;
    let (field, wire) = (t >> 3, (t & 7) as u8);
    match wire {
        _ if field == 0 => Err(CORRUPT),
        3 | 4 => Err(Problem::Fallback),
        6 | 7 => Err(CORRUPT),
        _ => Ok((field, wire)),
    }
}

/// A length-delimited field's bytes.
#[inline]
pub(crate) fn len<'a>(r: &mut Reader<'a>) -> P<&'a [u8]> {
    let start = r.pos();
    let n = r.varint_wide().ok_or(CORRUPT)?;
    if r.pos() - start > 5 {
        return Err(Problem::Fallback);
    }
    let n = usize::try_from(n).map_err(|_| CORRUPT)?;
    if n > r.left() {
        return Err(CORRUPT);
    }
    r.take(n).ok_or(CORRUPT)
}

/// One value of the wire type; its number (the bits of a fixed field) or its bytes.
#[inline]
pub(crate) fn scalar<'a>(r: &mut Reader<'a>, wire: u8) -> P<(u64, &'a [u8])> {
    Ok(match wire {
        VARINT => (r.varint_wide().ok_or(CORRUPT)?, &[][..]),
        FIXED64 => (r.fixed64().ok_or(CORRUPT)?, &[][..]),
        FIXED32 => {
            let b = r.take(4).ok_or(CORRUPT)?;
            (
                u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                &[][..],
            )
        }
        _ => (0, len(r)?),
    })
}

fn utf8(s: &[u8], checked: bool) -> P<()> {
    if s.is_ascii() || std::str::from_utf8(s).is_ok() {
        Ok(())
    } else if checked {
        Err(BAD_UTF8)
    } else {
        Err(Problem::Fallback) // upb keeps it; what Python then makes of it is Python's to say
    }
}

fn enum_value(plan: &Plan, sub: usize, v: u64) -> P<()> {
    let e = &plan.enums[sub];
    if e.closed && !e.names.contains_key(&(v as i32)) {
        return Err(Problem::Fallback);
    }
    Ok(())
}

/// Checks message `mi` of the plan; `entry`: a map entry, where anything but one key and one value
/// is left to Python (upb keeps such an entry whole as an unknown field).
pub(crate) fn check(plan: &Plan, mi: usize, b: &[u8], depth: u32, entry: bool) -> P<()> {
    if depth > MAX_NESTING {
        return Err(Problem::Fallback);
    }
    let m = &plan.messages[mi];
    if m.special == Special::Other {
        return Err(Problem::Fallback);
    }
    let mut seen = 0u128;
    let mut r = Reader::new(b);
    while !r.done() {
        let (number, wire) = tag(&mut r)?;
        let Some(i) = m.find(number) else {
            if entry {
                return Err(Problem::Fallback);
            }
            scalar(&mut r, wire)?;
            continue;
        };
        let f = &m.fields[i];
        if f.kind == GROUP {
            return Err(Problem::Fallback);
        }
        let single = f.card != Card::Repeated && f.card != Card::Map;
        if wire == wire_type(f.kind) {
            // A message given twice is merged by upb; in a map entry anything given twice is left too.
            if (entry || (single && f.kind == MESSAGE)) && i < 128 {
                if seen & (1 << i) != 0 {
                    return Err(Problem::Fallback);
                }
                seen |= 1 << i;
            } else if entry || (single && f.kind == MESSAGE) {
                return Err(Problem::Fallback);
            }
            let (v, s) = scalar(&mut r, wire)?;
            match f.kind {
                STRING => utf8(s, f.utf8)?,
                BYTES => {}
                MESSAGE => check(plan, f.sub, s, depth + 1, f.card == Card::Map)?,
                ENUM => enum_value(plan, f.sub, v)?,
                _ => {}
            }
        } else if wire == LEN && f.card == Card::Repeated && packable(f.kind) {
            let mut p = Reader::new(len(&mut r)?);
            let want = wire_type(f.kind);
            let size = match want {
                FIXED64 => 8,
                FIXED32 => 4,
                _ => 0,
            };
            if size != 0 && !p.left().is_multiple_of(size) {
                return Err(CORRUPT);
            }
            while !p.done() {
                let (v, _) = scalar(&mut p, want)?;
                if f.kind == ENUM {
                    enum_value(plan, f.sub, v)?;
                }
            }
        } else if entry {
            return Err(Problem::Fallback);
        } else {
            scalar(&mut r, wire)?; // upb keeps a field of another wire type as an unknown field
        }
    }
    Ok(())
}
