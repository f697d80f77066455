//! One ``Value`` (bridge/decode.py ``Decoder.value``) as JSON: its kind, timestamps, lists and maps.

use std::collections::BTreeMap;

use crate::decode::{utf8, Ctx, Fail, OrFallback, R};
use crate::json;
use crate::timefmt::{self, Mode};
use crate::wire::{Reader, FIXED64, LEN, VARINT};

enum Kind<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    Str(&'a [u8]),
    Bytes(&'a [u8]),
    Ts(&'a [u8]),
    List(&'a [u8]),
    Map(&'a [u8]),
}

/// The kind a Value holds: the last of its oneof fields on the wire.
fn kind(b: &[u8]) -> R<Kind<'_>> {
    let mut r = Reader::new(b);
    let mut k = Kind::Null;
    let mut last = 0u32;
    while !r.done() {
        let (f, w) = r.tag().fb()?;
        let want = match f {
            1..=4 => VARINT,
            5 => FIXED64,
            6..=10 => LEN,
            _ => {
                r.skip(w).fb()?;
                continue;
            }
        };
        if w != want || (f >= 8 && f == last) {
            return Err(Fail::Fallback); // a wire type upb reads as unknown, or a message field to merge
        }
        k = match f {
            1 => {
                r.varint().fb()?;
                Kind::Null
            }
            2 => Kind::Bool(r.varint().fb()? != 0),
            3 => Kind::Int(r.varint().fb()? as i64),
            4 => Kind::Uint(r.varint().fb()?),
            5 => Kind::Double(f64::from_bits(r.fixed64().fb()?)),
            6 => Kind::Str(r.bytes().fb()?),
            7 => Kind::Bytes(r.bytes().fb()?),
            8 => Kind::Ts(r.bytes().fb()?),
            9 => Kind::List(r.bytes().fb()?),
            _ => Kind::Map(r.bytes().fb()?),
        };
        last = f;
    }
    Ok(k)
}

fn timestamp(out: &mut Vec<u8>, b: &[u8], mode: Mode) -> R<()> {
    let mut r = Reader::new(b);
    let (mut seconds, mut nanos) = (0i64, 0i32);
    while !r.done() {
        match r.tag().fb()? {
            (1, VARINT) => seconds = r.varint().fb()? as i64,
            (2, VARINT) => nanos = r.varint().fb()? as i32,
            (1 | 2, _) => return Err(Fail::Fallback),
            (_, w) => r.skip(w).fb()?,
        }
    }
    timefmt::timestamp(out, mode, seconds, nanos).map_err(Fail::Bad)
}

/// The Values of a ListValue (field 1), or the entries of a MapValue (field 1).
pub(crate) fn field1(b: &[u8]) -> R<Vec<&[u8]>> {
    let mut r = Reader::new(b);
    let mut out = Vec::new();
    while !r.done() {
        match r.tag().fb()? {
            (1, LEN) => out.push(r.bytes().fb()?),
            (1, _) => return Err(Fail::Fallback),
            (_, w) => r.skip(w).fb()?,
        }
    }
    Ok(out)
}

fn map_entry(b: &[u8]) -> R<(&[u8], &[u8])> {
    let mut r = Reader::new(b);
    let (mut key, mut value): (&[u8], Option<&[u8]>) = (b"", None);
    while !r.done() {
        match r.tag().fb()? {
            (1, LEN) => key = r.bytes().fb()?,
            (2, LEN) if value.is_none() => value = Some(r.bytes().fb()?),
            // Another field given twice, a wrong wire type, or an unknown field (upb then keeps the whole entry
            // as an unknown field of the map, so the map lacks it): the Python transcoder decides.
            _ => return Err(Fail::Fallback),
        }
    }
    utf8(key)?;
    Ok((key, value.unwrap_or(b"")))
}

/// One Value as JSON (bridge/decode.py ``Decoder.value``); a timestamp as `mode` says (nested ones: the
/// route's mode, as the Python path writes them).
pub(crate) fn value(out: &mut Vec<u8>, b: &[u8], depth: u32, cx: &Ctx<'_>, mode: Mode) -> R<()> {
    match kind(b)? {
        Kind::Null => out.extend_from_slice(b"null"),
        Kind::Bool(v) => json::boolean(out, v),
        Kind::Int(v) => json::int(out, v),
        Kind::Uint(v) => json::uint(out, v),
        Kind::Double(v) => json::double(out, v),
        Kind::Str(s) => {
            utf8(s)?;
            cx.check_len(s.len())?;
            json::string(out, s);
        }
        Kind::Bytes(s) => {
            cx.check_len(s.len())?;
            json::base64(out, s);
        }
        Kind::Ts(t) => timestamp(out, t, mode)?,
        k @ (Kind::List(_) | Kind::Map(_)) => {
            if depth >= cx.o.max_depth {
                return Err(Fail::Bad(format!(
                    "lists and maps nest deeper than {} levels (limits.max_depth)",
                    cx.o.max_depth
                )));
            }
            if let Kind::List(l) = k {
                out.push(b'[');
                for (i, v) in field1(l)?.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    value(out, v, depth + 1, cx, cx.o.mode)?;
                }
                out.push(b']');
            } else if let Kind::Map(m) = k {
                // Keys in code point order (= UTF-8 byte order); a key given twice keeps its last value.
                let mut entries = BTreeMap::new();
                for e in field1(m)? {
                    let (key, v) = map_entry(e)?;
                    entries.insert(key, v);
                }
                out.push(b'{');
                for (i, (key, v)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    json::string(out, key);
                    out.push(b':');
                    value(out, v, depth + 1, cx, cx.o.mode)?;
                }
                out.push(b'}');
            }
        }
    }
    Ok(())
}
