//! A RowBatch: each row's values under the batch's column names.

use crate::decode::{Ctx, Decoded, Fail, OrFallback, R};
use crate::forms::Writer;
use crate::table::{invalid, layout};
use crate::value::value;
use crate::wire::{Reader, LEN, VARINT};

pub(crate) fn row_batch(b: &[u8], cx: &Ctx<'_>) -> R<Decoded> {
    let mut r = Reader::new(b);
    let mut names = Vec::new();
    let mut rows = Vec::new();
    while !r.done() {
        match r.tag().fb()? {
            (1, LEN) => names.push(r.bytes().fb()?),
            (2, LEN) => rows.push(r.bytes().fb()?),
            (1 | 2, _) => return Err(Fail::Fallback),
            (_, w) => r.skip(w).fb()?,
        }
    }
    let l = layout(&names, cx)?;
    if names.is_empty() && !rows.is_empty() {
        return Err(Fail::Fallback);
    }
    let n = l.keys.len();
    let mut d = Decoded {
        buf: Vec::with_capacity(b.len() * 2),
        ..Decoded::default()
    };
    let mut ops = Vec::new();
    let mut index = Vec::new();
    let mut values = Vec::with_capacity(n);
    let mut cells = Vec::with_capacity(n);
    let mut scratch = Vec::new();
    let mut w = Writer::new(&names, &l.keep, cx.o.form.as_ref());
    d.columns = w.columns(&names, &l.keep);
    let mut any_op = false;
    for (i, row) in rows.into_iter().enumerate() {
        values.clear();
        let mut op = 0i32;
        let mut p = Reader::new(row);
        while !p.done() {
            match p.tag().fb()? {
                (1, LEN) => values.push(p.bytes().fb()?),
                (2, VARINT) => op = p.varint().fb()? as i32,
                (1 | 2, _) => return Err(Fail::Fallback),
                (_, w) => p.skip(w).fb()?,
            }
        }
        if values.len() != n {
            d.errors.push((
                i,
                format!("row has {} values for {n} columns", values.len()),
            ));
            continue;
        }
        let start = d.buf.len();
        d.buf.push(b'{');
        let mut failed = None;
        cells.clear();
        for (j, v) in values.iter().enumerate() {
            let written = if l.keep[j] {
                if d.buf.len() > start + 1 {
                    d.buf.push(b',');
                }
                d.buf.extend_from_slice(&l.keys[j]);
                let a = d.buf.len();
                let r = value(&mut d.buf, v, 0, cx, l.modes[j]);
                cells.push(Some((a, d.buf.len())));
                r
            } else {
                // Dropped, yet decoded: a bad value there still refuses the row, as on the Python path.
                scratch.clear();
                cells.push(None);
                value(&mut scratch, v, 0, cx, l.modes[j])
            };
            match written {
                Ok(()) => {}
                Err(Fail::Bad(e)) => {
                    failed = Some(e);
                    break;
                }
                Err(Fail::Fallback) => return Err(Fail::Fallback),
            }
        }
        if let Some(e) = failed {
            d.buf.truncate(start);
            d.errors.push((i, format!("bad value: {e}")));
            continue;
        }
        // Ops are kept once any row that decodes holds one (the Python path checks columns after that).
        any_op |= op != 0;
        if let Some((s, cell)) = invalid(&d.buf, &cells, &l, cx)? {
            d.buf.truncate(start);
            d.invalid.push((i, s, cell));
            continue;
        }
        w.close(&mut d.buf, start, &cells);
        d.ends.push(d.buf.len());
        index.push(i);
        ops.push(op);
    }
    if any_op {
        d.ops = Some(ops);
    }
    if !d.errors.is_empty() || !d.invalid.is_empty() {
        d.index = Some(index);
    }
    Ok(d)
}
