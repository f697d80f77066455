//! What the service reads of an IngestRequest before its route transcodes it: route, sequence, payload
//! kind and row count, from the wire bytes, without building the message.
//!
//! `peek` answers only for a RowBatch, ColumnBatch, MessageBatch or JsonBatch request written in a plain form that upb is sure
//! to parse: every field one it knows with its own wire type, one-byte tags, UTF-8 strings, shallow
//! nesting, no payload or data member given twice. Anything else gives `None`, and the service parses
//! the request with upb as before, so a request `peek` answers is one upb would have parsed too.

use crate::wire::{Reader, FIXED64, LEN, VARINT};

/// Messages nested in messages, under upb's recursion limit (100) with room to spare.
const MAX_NESTING: u32 = 80;

pub struct Peeked {
    pub route: String,
    pub sequence: u64,
    /// 3: rows (RowBatch), 4: columns (ColumnBatch), 5: messages (MessageBatch), 6: json (JsonBatch).
    pub kind: u32,
    pub rows: u64,
}

/// A field's number and wire type, from a one-byte tag (every field here has a number below 16).
fn tag(r: &mut Reader<'_>) -> Option<(u32, u8)> {
    let t = r.varint()?;
    if t >= 0x80 {
        return None;
    }
    Some(((t >> 3) as u32, (t & 7) as u8))
}

/// A length-delimited field's bytes, its length written in at most four bytes (anything longer: `None`).
fn len<'a>(r: &mut Reader<'a>) -> Option<&'a [u8]> {
    let start = r.pos();
    let b = r.bytes()?;
    (r.pos() - start - b.len() <= 4).then_some(b)
}

fn utf8(b: &[u8]) -> Option<()> {
    (b.is_ascii() || std::str::from_utf8(b).is_ok()).then_some(())
}

/// Walks a message whose fields `f` checks; `f` returns None for anything outside the plain form.
fn walk<'a>(b: &'a [u8], mut f: impl FnMut(u32, u8, &mut Reader<'a>) -> Option<()>) -> Option<()> {
    let mut r = Reader::new(b);
    while !r.done() {
        let (field, wire) = tag(&mut r)?;
        f(field, wire, &mut r)?;
    }
    Some(())
}

/// A repeated scalar: unpacked (`wire`) or packed; returns how many values it holds.
fn scalars(r: &mut Reader<'_>, w: u8, wire: u8) -> Option<u64> {
    if w == wire {
        if wire == VARINT {
            r.varint()?;
        } else {
            r.fixed64()?;
        }
        return Some(1);
    }
    if w != LEN {
        return None;
    }
    let b = len(r)?;
    if wire == FIXED64 {
        return (b.len() % 8 == 0).then_some((b.len() / 8) as u64);
    }
    let mut p = Reader::new(b);
    let mut n = 0;
    while !p.done() {
        p.varint()?;
        n += 1;
    }
    Some(n)
}

fn value(b: &[u8], depth: u32) -> Option<()> {
    if depth > MAX_NESTING {
        return None;
    }
    walk(b, |f, w, r| match (f, w) {
        (1..=4, VARINT) => r.varint().map(|_| ()),
        (5, FIXED64) => r.fixed64().map(|_| ()),
        (6, LEN) => utf8(len(r)?),
        (7, LEN) => len(r).map(|_| ()),
        (8, LEN) => walk(len(r)?, |f, w, r| match (f, w) {
            (1 | 2, VARINT) => r.varint().map(|_| ()),
            _ => None,
        }),
        (9, LEN) => list(len(r)?, depth + 1),
        (10, LEN) => walk(len(r)?, |f, w, r| match (f, w) {
            (1, LEN) => walk(len(r)?, |f, w, r| match (f, w) {
                (1, LEN) => utf8(len(r)?),
                (2, LEN) => value(len(r)?, depth + 3),
                _ => None,
            }),
            _ => None,
        }),
        _ => None,
    })
}

fn list(b: &[u8], depth: u32) -> Option<()> {
    walk(b, |f, w, r| match (f, w) {
        (1, LEN) => value(len(r)?, depth + 1),
        _ => None,
    })
}

fn row_batch(b: &[u8]) -> Option<u64> {
    let mut rows = 0;
    walk(b, |f, w, r| match (f, w) {
        (1, LEN) => utf8(len(r)?),
        (2, LEN) => {
            rows += 1;
            walk(len(r)?, |f, w, r| match (f, w) {
                (1, LEN) => value(len(r)?, 4),
                (2, VARINT) => r.varint().map(|_| ()),
                _ => None,
            })
        }
        _ => None,
    })?;
    Some(rows)
}

/// One Column: how many values its data holds (None: no data), and one past its highest null row.
fn column(b: &[u8]) -> Option<(Option<u64>, u64)> {
    let mut count = None;
    let mut nulls = 0u64;
    walk(b, |f, w, r| {
        if (2..=8).contains(&f) || f == 10 {
            if count.is_some() || w != LEN {
                return None; // a second data member: upb merges or replaces it
            }
            let data = len(r)?;
            let mut n = 0u64;
            walk(data, |g, w, r| {
                if g != 1 {
                    return None;
                }
                n += match f {
                    2 | 3 | 5 | 8 => scalars(r, w, VARINT)?,
                    4 => scalars(r, w, FIXED64)?,
                    6 if w == LEN => utf8(len(r)?).map(|_| 1)?,
                    7 if w == LEN => len(r).map(|_| 1)?,
                    10 if w == LEN => value(len(r)?, 4).map(|_| 1)?,
                    _ => return None,
                };
                Some(())
            })?;
            count = Some(n);
            return Some(());
        }
        match (f, w) {
            (1, LEN) => utf8(len(r)?),
            (9, VARINT) => {
                nulls = nulls.max(u64::from(r.varint()? as u32) + 1);
                Some(())
            }
            (9, LEN) => {
                let mut p = Reader::new(len(r)?);
                while !p.done() {
                    nulls = nulls.max(u64::from(p.varint()? as u32) + 1);
                }
                Some(())
            }
            _ => None,
        }
    })?;
    Some((count, nulls))
}

/// Rows as bridge/ingest/acks.py ``request_rows`` counts them: the first column with data, else the
/// highest null row.
fn column_batch(b: &[u8]) -> Option<u64> {
    let (mut first, mut nulls) = (None, 0u64);
    walk(b, |f, w, r| match (f, w) {
        (1, LEN) => {
            let (count, n) = column(len(r)?)?;
            first = first.or(count);
            nulls = nulls.max(n);
            Some(())
        }
        (2, _) => scalars(r, w, VARINT).map(|_| ()),
        _ => None,
    })?;
    Some(first.unwrap_or(nulls))
}

/// Rows of a JsonBatch: its objects (bytes, never checked as UTF-8 by upb); ops unpacked or packed.
fn json_batch(b: &[u8]) -> Option<u64> {
    let mut rows = 0;
    walk(b, |f, w, r| match (f, w) {
        (1, LEN) => {
            rows += 1;
            len(r).map(|_| ())
        }
        (2, _) => scalars(r, w, VARINT).map(|_| ()),
        _ => None,
    })?;
    Some(rows)
}

/// Rows of a MessageBatch: its messages (bytes: upb reads them only when the batch is transcoded); its
/// type a UTF-8 string; ops unpacked or packed.
fn message_batch(b: &[u8]) -> Option<u64> {
    let mut rows = 0;
    walk(b, |f, w, r| match (f, w) {
        (1, LEN) => utf8(len(r)?),
        (2, LEN) => {
            rows += 1;
            len(r).map(|_| ())
        }
        (3, _) => scalars(r, w, VARINT).map(|_| ()),
        _ => None,
    })?;
    Some(rows)
}

/// Route, sequence, kind and rows of a plain RowBatch, ColumnBatch, MessageBatch or JsonBatch request;
/// `None` otherwise.
pub fn peek(request: &[u8]) -> Option<Peeked> {
    let mut p = Peeked {
        route: String::new(),
        sequence: 0,
        kind: 0,
        rows: 0,
    };
    let (mut seen_route, mut seen_seq) = (false, false);
    walk(request, |f, w, r| match (f, w) {
        (1, LEN) if !seen_route => {
            seen_route = true;
            p.route = std::str::from_utf8(len(r)?).ok()?.to_owned();
            Some(())
        }
        (2, VARINT) if !seen_seq => {
            seen_seq = true;
            p.sequence = r.varint()?;
            Some(())
        }
        (3..=6, LEN) if p.kind == 0 => {
            let b = len(r)?;
            p.kind = f;
            p.rows = match f {
                3 => row_batch(b)?,
                4 => column_batch(b)?,
                5 => message_batch(b)?,
                _ => json_batch(b)?,
            };
            Some(())
        }
        _ => None,
    })?;
    (p.kind != 0).then_some(p)
}
