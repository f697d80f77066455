//! A MessageBatch: each of the caller's messages, checked as upb parses it (`msgcheck`), then written as
//! bridge/descriptors.py writes it: every field in declaration order, defaults included, values in
//! protobuf's JSON mapping with 64-bit integers as numbers, map keys sorted, enums by name.

use std::collections::BTreeMap;

use crate::decode::{Ctx, Decoded, Fail, OrFallback, R};
use crate::json;
use crate::msgcheck::{check, scalar, tag, Problem};
use crate::plan::*;
use crate::timefmt::{self, Mode};
use crate::wire::{varints, Reader, LEN, VARINT};

/// What the plans of a route hold for a type name.
pub enum Lookup {
    Plan(std::sync::Arc<Plan>),
    /// The Python transcoder decides every batch of this type (none in the set, or not taken natively).
    Python,
    /// Not compiled yet.
    Missing,
}

/// A field's last occurrence in a message: its order on the wire (0: absent), number or bytes.
#[derive(Clone, Copy)]
struct Slot<'a> {
    seq: u32,
    v: u64,
    s: &'a [u8],
}

impl Slot<'_> {
    const ABSENT: Slot<'static> = Slot {
        seq: 0,
        v: 0,
        s: &[],
    };
}

/// Fields a message type holds before its slots move off the stack.
const STACK: usize = 32;

/// Whether upb reads this wire type as field `f` (`Some(true)`: a packed run), or as an unknown field.
fn accepts(f: &Field, wire: u8) -> Option<bool> {
    if wire == wire_type(f.kind) {
        Some(false)
    } else if wire == LEN && f.card == Card::Repeated && packable(f.kind) {
        Some(true)
    } else {
        None
    }
}

/// The bytes of every occurrence of field `f` (a map's entries) in a message's bytes.
fn occurrences<'a>(f: &'a Field, b: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut r = Reader::new(b);
    std::iter::from_fn(move || {
        while !r.done() {
            let (number, wire) = tag(&mut r).ok()?;
            let (_, s) = scalar(&mut r, wire).ok()?;
            if number == f.number && wire == LEN {
                return Some(s);
            }
        }
        None
    })
}

struct Writer<'p> {
    plan: &'p Plan,
    mode: Mode,
}

/// A wire problem met while writing: `check` has read the message first, so this does not happen; if it
/// did, Python would decide.
fn fallback(_: Problem) -> Fail {
    Fail::Fallback
}

impl Writer<'_> {
    /// Message `mi` as a field's value.
    fn message(&self, mi: usize, b: &[u8], out: &mut Vec<u8>, mode: Mode) -> R<()> {
        let m = &self.plan.messages[mi];
        match m.special {
            Special::Plain => self.fields(mi, b, out),
            Special::Timestamp | Special::Duration => {
                let (mut seconds, mut nanos) = (0i64, 0i32);
                let mut r = Reader::new(b);
                while !r.done() {
                    let (number, wire) = tag(&mut r).map_err(fallback)?;
                    let (v, _) = scalar(&mut r, wire).map_err(fallback)?;
                    match (number, wire) {
                        (1, VARINT) => seconds = v as i64,
                        (2, VARINT) => nanos = v as i32,
                        _ => {}
                    }
                }
                if m.special == Special::Timestamp {
                    timefmt::timestamp(out, mode, seconds, nanos).map_err(Fail::Bad)
                } else {
                    timefmt::duration(out, seconds, nanos).map_err(Fail::Bad)
                }
            }
            Special::Wrapper => {
                let f = &m.fields[0];
                let mut last = None;
                let mut r = Reader::new(b);
                while !r.done() {
                    let (number, wire) = tag(&mut r).map_err(fallback)?;
                    let (v, s) = scalar(&mut r, wire).map_err(fallback)?;
                    if number == 1 && wire == wire_type(f.kind) {
                        last = Some((v, s));
                    }
                }
                match last {
                    Some((v, s)) => self.element(f, v, s, out),
                    None => self.default(f, out),
                }
            }
            Special::Other => Err(Fail::Fallback),
        }
    }

    /// One value of field `f` (an element, for a repeated field).
    fn element(&self, f: &Field, v: u64, s: &[u8], out: &mut Vec<u8>) -> R<()> {
        match f.kind {
            DOUBLE => json::double(out, f64::from_bits(v)),
            FLOAT => json::float32(out, f32::from_bits(v as u32)),
            INT64 | SFIXED64 => json::int(out, v as i64),
            SINT64 => json::int(out, ((v >> 1) as i64) ^ -((v & 1) as i64)),
            INT32 | SFIXED32 => json::int(out, i64::from(v as i32)),
            SINT32 => {
                let n = v as u32;
                json::int(out, i64::from(((n >> 1) as i32) ^ -((n & 1) as i32)))
            }
            UINT32 | FIXED32 => json::uint(out, u64::from(v as u32)),
            UINT64 | FIXED64 => json::uint(out, v),
            BOOL => json::boolean(out, v != 0),
            STRING => json::string(out, s),
            BYTES => json::base64(out, s),
            ENUM => {
                let e = &self.plan.enums[f.sub];
                if e.null {
                    out.extend_from_slice(b"null");
                } else if let Some(name) = e.names.get(&(v as i32)) {
                    out.extend_from_slice(name);
                } else {
                    // An open enum's number it does not define: written as a string.
                    out.push(b'"');
                    json::int(out, i64::from(v as i32));
                    out.push(b'"');
                }
            }
            MESSAGE => {
                let mode = if f.rfc3339 { Mode::Rfc3339 } else { self.mode };
                self.message(f.sub, s, out, mode)?;
            }
            _ => return Err(Fail::Fallback),
        }
        Ok(())
    }

    /// The value of an absent field without presence: its type's zero.
    fn default(&self, f: &Field, out: &mut Vec<u8>) -> R<()> {
        match f.kind {
            DOUBLE | FLOAT => out.extend_from_slice(b"0.0"),
            BOOL => out.extend_from_slice(b"false"),
            STRING | BYTES => out.extend_from_slice(b"\"\""),
            MESSAGE => return self.element(f, 0, &[], out), // a map entry's absent value: an empty message
            // A closed enum's default is its first value, not 0; groups are never written natively.
            ENUM if self.plan.enums[f.sub].closed => return Err(Fail::Fallback),
            GROUP => return Err(Fail::Fallback),
            _ => return self.element(f, 0, &[], out),
        }
        Ok(())
    }

    /// A plain message as a JSON object of all its fields.
    fn fields(&self, mi: usize, b: &[u8], out: &mut Vec<u8>) -> R<()> {
        let m = &self.plan.messages[mi];
        // Each field's last occurrence (its order on the wire, 0: absent), on the stack for most types;
        // repeated fields and maps are read again from the bytes when written.
        let mut stack = [Slot::ABSENT; STACK];
        let mut heap;
        let slots: &mut [Slot<'_>] = if m.fields.len() <= STACK {
            &mut stack[..m.fields.len()]
        } else {
            heap = vec![Slot::ABSENT; m.fields.len()];
            &mut heap
        };
        let mut r = Reader::new(b);
        let mut seq = 0u32;
        while !r.done() {
            let (number, wire) = tag(&mut r).map_err(fallback)?;
            let (v, s) = scalar(&mut r, wire).map_err(fallback)?;
            let Some(i) = m.find(number) else { continue };
            if accepts(&m.fields[i], wire).is_some() {
                seq += 1;
                slots[i] = Slot { seq, v, s };
            }
        }
        out.push(b'{');
        for (j, f) in m.fields.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&f.key);
            let at = slots[j].seq;
            match f.card {
                Card::Repeated => {
                    out.push(b'[');
                    if at != 0 {
                        self.repeated(f, b, out)?;
                    }
                    out.push(b']');
                }
                Card::Map if at != 0 => self.map(f, occurrences(f, b), out)?,
                Card::Map => out.extend_from_slice(b"{}"),
                _ => {
                    // A oneof holds the member given last.
                    let set = at != 0
                        && (f.oneof.is_none()
                            || !m
                                .fields
                                .iter()
                                .zip(slots.iter())
                                .any(|(g, o)| g.oneof == f.oneof && o.seq > at));
                    if set {
                        self.element(f, slots[j].v, slots[j].s, out)?;
                    } else if f.card == Card::Presence {
                        out.extend_from_slice(b"null");
                    } else {
                        self.default(f, out)?;
                    }
                }
            }
        }
        out.push(b'}');
        Ok(())
    }

    /// A repeated field's elements, from every occurrence of it in the message's bytes.
    fn repeated(&self, f: &Field, b: &[u8], out: &mut Vec<u8>) -> R<()> {
        let mut first = true;
        let mut r = Reader::new(b);
        while !r.done() {
            let (number, wire) = tag(&mut r).map_err(fallback)?;
            let (v, s) = scalar(&mut r, wire).map_err(fallback)?;
            match accepts(f, wire) {
                Some(packed) if number == f.number => {
                    if packed {
                        self.packed(f, s, out, &mut first)?;
                        continue;
                    }
                    if !std::mem::take(&mut first) {
                        out.push(b',');
                    }
                    self.element(f, v, s, out)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The elements of one packed run.
    fn packed(&self, f: &Field, run: &[u8], out: &mut Vec<u8>, first: &mut bool) -> R<()> {
        let mut p = Reader::new(run);
        while !p.done() {
            let (v, _) = scalar(&mut p, wire_type(f.kind)).map_err(fallback)?;
            if !std::mem::take(first) {
                out.push(b',');
            }
            self.element(f, v, &[], out)?;
        }
        Ok(())
    }

    /// A map as an object: keys as protobuf's JSON writes them, in code point order; a key given twice
    /// keeps its last value.
    fn map<'a>(
        &self,
        f: &Field,
        entries: impl Iterator<Item = &'a [u8]>,
        out: &mut Vec<u8>,
    ) -> R<()> {
        let (kf, vf) = map_entry(self.plan, f).fb()?;
        let mut sorted: BTreeMap<Vec<u8>, Option<(u64, &[u8])>> = BTreeMap::new();
        for e in entries {
            let (mut key, mut value) = ((0u64, &[][..]), None);
            let mut r = Reader::new(e);
            while !r.done() {
                let (number, wire) = tag(&mut r).map_err(fallback)?;
                let got = scalar(&mut r, wire).map_err(fallback)?;
                match number {
                    1 => key = got,
                    _ => value = Some(got),
                }
            }
            let mut text = Vec::new();
            match kf.kind {
                STRING => text.extend_from_slice(key.1),
                BOOL => text.extend_from_slice(if key.0 != 0 { b"true" } else { b"false" }),
                _ => self.element(kf, key.0, key.1, &mut text)?,
            }
            sorted.insert(text, value);
        }
        out.push(b'{');
        for (i, (key, value)) in sorted.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::string(out, &key);
            out.push(b':');
            // Python meets the values in upb's hash order: which error comes first is its to say.
            match value {
                Some((v, s)) => self.element(vf, v, s, out),
                None => self.default(vf, out),
            }
            .map_err(|_| Fail::Fallback)?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// A MessageBatch's rows, or why not: `Err(None)` the Python transcoder decides, `Err(Some(type))` the
/// plan for that type is needed first.
pub(crate) fn message_batch(
    b: &[u8],
    cx: &Ctx<'_>,
    lookup: &dyn Fn(&str) -> Lookup,
) -> Result<Decoded, Option<String>> {
    let mut r = Reader::new(b);
    let mut type_name: &[u8] = b"";
    let mut messages = Vec::new();
    let mut ops = Vec::new();
    while !r.done() {
        match r.tag().ok_or(None)? {
            (1, LEN) => type_name = r.bytes().ok_or(None)?,
            (2, LEN) => messages.push(r.bytes().ok_or(None)?),
            (3, w) => varints(&mut r, w, &mut ops).ok_or(None)?,
            (1 | 2, _) => return Err(None),
            (_, w) => r.skip(w).ok_or(None)?,
        }
    }
    let type_name = std::str::from_utf8(type_name).map_err(|_| None)?;
    let plan = match lookup(type_name) {
        Lookup::Plan(p) => p,
        Lookup::Python => return Err(None),
        Lookup::Missing => return Err(Some(type_name.to_owned())),
    };
    // Declared columns are checked by the Python transcoder, a column a dialect reserves is refused by it,
    // and a route whose bodies are tables (compact, CSV) takes its message rows as a table.
    let reserved = |f: &Field| {
        let name = &f.key[1..f.key.len().saturating_sub(2).max(1)];
        cx.o.reserved.iter().any(|r| r[..] == *name)
    };
    if cx.o.schema.is_some() || cx.o.form.is_some() || plan.messages[0].fields.iter().any(reserved)
    {
        return Err(None);
    }
    if !ops.is_empty() && ops.len() != messages.len() {
        return Err(None); // the Python transcoder rejects the batch
    }
    let w = Writer {
        plan: &plan,
        mode: cx.o.mode,
    };
    let mut d = Decoded {
        buf: Vec::with_capacity(b.len() * 2),
        ..Decoded::default()
    };
    let mut index = Vec::with_capacity(messages.len());
    for (i, raw) in messages.into_iter().enumerate() {
        if cx.long && raw.len() as u64 > cx.o.max_value {
            d.errors.push((i, cx.too_long(raw.len())));
            continue;
        }
        match check(&plan, 0, raw, 0, false) {
            Ok(()) => {}
            Err(Problem::Corrupt(why)) => {
                d.errors.push((
                    i,
                    format!(
                        "does not decode as {type_name}: Error parsing message with type '{}': {why}",
                        plan.full_name
                    ),
                ));
                continue;
            }
            Err(Problem::Fallback) => return Err(None),
        }
        let start = d.buf.len();
        match w.fields(0, raw, &mut d.buf) {
            Ok(()) => {
                d.ends.push(d.buf.len());
                index.push(i);
            }
            Err(Fail::Bad(e)) => {
                d.buf.truncate(start);
                d.errors.push((i, format!("bad value: {e}")));
            }
            Err(Fail::Fallback) => return Err(None),
        }
    }
    if ops.iter().any(|&o| o as i32 != 0) {
        d.ops = Some(index.iter().map(|&i| ops[i] as i32).collect());
    }
    if !d.errors.is_empty() {
        d.index = Some(index);
    }
    Ok(d)
}
