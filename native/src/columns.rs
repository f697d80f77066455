//! A ColumnBatch: columns of one type each (or of Values), null rows, ops; transposed into rows.

use std::collections::BTreeMap;

use crate::decode::{utf8, Ctx, Decoded, Fail, OrFallback, ALL_NULL_CELLS, ALL_NULL_ROWS, R};
use crate::forms::Writer;
use crate::json;
use crate::table::{invalid, layout};
use crate::timefmt::{self, Mode};
use crate::value::{field1, value};
use crate::wire::{fixed64s, varints, Reader, LEN};

/// A column name as Python's ``repr`` writes it; only printable ASCII is written here.
fn py_repr(name: &[u8]) -> R<String> {
    if !name.iter().all(|&c| (0x20..0x7f).contains(&c)) {
        return Err(Fail::Fallback);
    }
    let q = if name.contains(&b'\'') && !name.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut s = String::with_capacity(name.len() + 2);
    s.push(q as char);
    for &c in name {
        if c == b'\\' || c == q {
            s.push('\\');
        }
        s.push(c as char);
    }
    s.push(q as char);
    Ok(s)
}

/// One column's cells as JSON text; `None`: all null (field `data` unset).
struct Cells {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl Cells {
    fn end(&mut self) {
        self.ends.push(self.buf.len());
    }
    fn cell(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }
}

fn repeated_len(b: &[u8]) -> R<Vec<&[u8]>> {
    field1(b)
}

fn repeated_varints(b: &[u8]) -> R<Vec<u64>> {
    let mut r = Reader::new(b);
    let mut out = Vec::new();
    while !r.done() {
        match r.tag().fb()? {
            (1, w) => varints(&mut r, w, &mut out).fb()?,
            (_, w) => r.skip(w).fb()?,
        }
    }
    Ok(out)
}

fn column(
    field: u32,
    data: &[u8],
    name: &[u8],
    mode: Mode,
    bad: &mut BTreeMap<usize, String>,
    cx: &Ctx<'_>,
) -> R<Cells> {
    let mut c = Cells {
        buf: Vec::with_capacity(data.len() * 2),
        ends: Vec::new(),
    };
    let mut note = |i: usize, e: String| {
        bad.entry(i).or_insert(e);
    };
    match field {
        2 => {
            for v in repeated_varints(data)? {
                json::int(&mut c.buf, v as i64);
                c.end();
            }
        }
        3 => {
            for v in repeated_varints(data)? {
                json::uint(&mut c.buf, v);
                c.end();
            }
        }
        4 => {
            let mut r = Reader::new(data);
            let mut bits = Vec::new();
            while !r.done() {
                match r.tag().fb()? {
                    (1, w) => fixed64s(&mut r, w, &mut bits).fb()?,
                    (_, w) => r.skip(w).fb()?,
                }
            }
            for v in bits {
                json::double(&mut c.buf, f64::from_bits(v));
                c.end();
            }
        }
        5 => {
            for v in repeated_varints(data)? {
                json::boolean(&mut c.buf, v != 0);
                c.end();
            }
        }
        6 | 7 => {
            for (i, s) in repeated_len(data)?.into_iter().enumerate() {
                if field == 6 {
                    utf8(s)?;
                    json::string(&mut c.buf, s);
                } else {
                    json::base64(&mut c.buf, s);
                }
                if let Err(Fail::Bad(e)) = cx.check_len(s.len()) {
                    note(i, e);
                }
                c.end();
            }
        }
        8 => {
            for (i, v) in repeated_varints(data)?.into_iter().enumerate() {
                let start = c.buf.len();
                if let Err(e) = timefmt::nanos(&mut c.buf, mode, v as i64) {
                    c.buf.truncate(start);
                    c.buf.extend_from_slice(b"null");
                    note(i, format!("column {}: {e}", py_repr(name)?));
                }
                c.end();
            }
        }
        10 => {
            for (i, v) in repeated_len(data)?.into_iter().enumerate() {
                let start = c.buf.len();
                match value(&mut c.buf, v, 0, cx, mode) {
                    Ok(()) => {}
                    Err(Fail::Bad(e)) => {
                        c.buf.truncate(start);
                        c.buf.extend_from_slice(b"null");
                        note(i, format!("column {}: bad value: {e}", py_repr(name)?));
                    }
                    Err(Fail::Fallback) => return Err(Fail::Fallback),
                }
                c.end();
            }
        }
        _ => return Err(Fail::Fallback),
    }
    Ok(c)
}

struct Col<'a> {
    name: &'a [u8],
    data: Option<(u32, &'a [u8])>,
    null_rows: Vec<u64>,
}

fn parse_column(b: &[u8]) -> R<Col<'_>> {
    let mut r = Reader::new(b);
    let mut c = Col {
        name: b"",
        data: None,
        null_rows: Vec::new(),
    };
    while !r.done() {
        match r.tag().fb()? {
            (1, LEN) => c.name = r.bytes().fb()?,
            (9, w) => varints(&mut r, w, &mut c.null_rows).fb()?,
            (f @ (2..=8 | 10), LEN) => {
                if matches!(c.data, Some((g, _)) if g == f) {
                    return Err(Fail::Fallback); // the same member twice: upb merges them
                }
                c.data = Some((f, r.bytes().fb()?));
            }
            (1..=10, _) => return Err(Fail::Fallback),
            (_, w) => r.skip(w).fb()?,
        }
    }
    Ok(c)
}

pub(crate) fn column_batch(b: &[u8], cx: &Ctx<'_>) -> R<Decoded> {
    let mut r = Reader::new(b);
    let mut cols = Vec::new();
    let mut ops = Vec::new();
    while !r.done() {
        match r.tag().fb()? {
            (1, LEN) => cols.push(parse_column(r.bytes().fb()?)?),
            (2, w) => varints(&mut r, w, &mut ops).fb()?,
            (1, _) => return Err(Fail::Fallback),
            (_, w) => r.skip(w).fb()?,
        }
    }
    let names: Vec<&[u8]> = cols.iter().map(|c| c.name).collect();
    let l = layout(&names, cx)?;
    let mut bad = BTreeMap::new();
    let mut cells = Vec::with_capacity(cols.len());
    let mut length = None;
    for (j, c) in cols.iter().enumerate() {
        let cc = match c.data {
            None => None,
            Some((f, data)) => Some(column(f, data, c.name, l.modes[j], &mut bad, cx)?),
        };
        if let Some(cc) = &cc {
            match length {
                None => length = Some(cc.ends.len()),
                Some(n) if n != cc.ends.len() => return Err(Fail::Fallback),
                _ => {}
            }
        }
        cells.push(cc);
    }
    let length = match length {
        Some(n) => n,
        None => {
            // Every column is all null: the null rows say how many rows there are. A few bytes can ask for
            // billions (the service refuses over max_rows_per_message first); huge ones stay with Python.
            let n = cols
                .iter()
                .map(|c| {
                    c.null_rows
                        .iter()
                        .map(|&r| r as u32 as usize + 1)
                        .max()
                        .unwrap_or(0)
                })
                .max()
                .unwrap_or(0);
            if n > ALL_NULL_ROWS || n.saturating_mul(cols.len()) > ALL_NULL_CELLS {
                return Err(Fail::Fallback);
            }
            n
        }
    };
    // Per column, its null rows in order (sparse: a column's cost is its own null rows, not the row count).
    let mut null: Vec<Vec<usize>> = Vec::with_capacity(cols.len());
    for c in &cols {
        let mut rows: Vec<usize> = c.null_rows.iter().map(|&r| r as u32 as usize).collect();
        if rows.iter().any(|&r| r >= length) {
            return Err(Fail::Fallback);
        }
        rows.sort_unstable();
        rows.dedup();
        null.push(rows);
    }
    let mut next_null = vec![0usize; cols.len()];
    if cols.is_empty() && length == 0 && !ops.is_empty() {
        return Err(Fail::Fallback);
    }
    if !ops.is_empty() && ops.len() != length {
        return Err(Fail::Fallback);
    }
    let ops: Vec<i32> = ops.iter().map(|&o| o as i32).collect();
    let any_op = ops.iter().any(|&o| o != 0);
    let mut d = Decoded {
        buf: Vec::with_capacity(b.len() * 2),
        ..Decoded::default()
    };
    let mut index = Vec::new();
    let mut kept_ops = Vec::new();
    let mut spans = Vec::with_capacity(cols.len());
    let mut w = Writer::new(&names, &l.keep, cx.o.form.as_ref());
    d.columns = w.columns(&names, &l.keep);
    #[allow(clippy::needless_range_loop)]
    // i is the row: it indexes the cells, the nulls, the ops and the errors
    for i in 0..length {
        for (j, rows) in null.iter().enumerate() {
            while next_null[j] < rows.len() && rows[next_null[j]] < i {
                next_null[j] += 1;
            }
        }
        if bad.contains_key(&i) {
            continue;
        }
        let start = d.buf.len();
        d.buf.push(b'{');
        spans.clear();
        for (j, k) in l.keys.iter().enumerate() {
            if !l.keep[j] {
                spans.push(None);
                continue;
            }
            if d.buf.len() > start + 1 {
                d.buf.push(b',');
            }
            d.buf.extend_from_slice(k);
            let a = d.buf.len();
            match &cells[j] {
                Some(cc) if null[j].get(next_null[j]) != Some(&i) => {
                    d.buf.extend_from_slice(cc.cell(i))
                }
                _ => d.buf.extend_from_slice(b"null"),
            }
            spans.push(Some((a, d.buf.len())));
        }
        if let Some((s, cell)) = invalid(&d.buf, &spans, &l, cx)? {
            d.buf.truncate(start);
            d.invalid.push((i, s, cell));
            continue;
        }
        w.close(&mut d.buf, start, &spans);
        d.ends.push(d.buf.len());
        index.push(i);
        if any_op {
            kept_ops.push(ops[i]);
        }
    }
    if any_op {
        d.ops = Some(kept_ops);
    }
    if !bad.is_empty() || !d.invalid.is_empty() {
        d.index = Some(index);
        d.errors = bad.into_iter().filter(|(i, _)| *i < length).collect();
    }
    Ok(d)
}
