//! An IngestRequest's RowBatch or ColumnBatch, read from its wire bytes, to one compact JSON object per
//! row: the bytes, ops, caller indices and row errors that bridge/decode.py and bridge/formats.py give.
//!
//! Anything the Python transcoder would answer with a batch rejection, and any wire form it would merge
//! (a message field given twice), gives `None`: the request then goes through the Python transcoder,
//! which has the answer. Row errors carry the Python transcoder's exact reasons.

use std::collections::BTreeMap;

use crate::forms::{Form, Writer};
use crate::json;
use crate::timefmt::{self, Mode};
use crate::validate::{self, Problem, Schema};
use crate::wire::{fixed64s, varints, Reader, FIXED64, LEN, VARINT};

/// The deepest `max_depth` taken natively: orjson refuses deeper documents than about 250.
pub const MAX_DEPTH: u32 = 200;
/// All-null batches larger than this are left to the Python transcoder (rows, and rows times columns).
const ALL_NULL_ROWS: usize = 1 << 16;
const ALL_NULL_CELLS: usize = 1 << 22;

#[derive(Clone, Debug)]
pub struct Options {
    pub mode: Mode,
    pub max_value: u64,
    pub max_depth: u32,
    pub max_columns: usize,
    /// Timestamp columns written as RFC 3339 whatever `mode` (``Plan.rfc3339_columns``).
    pub fixed: Vec<Vec<u8>>,
    /// Declared columns the rows are checked against (bridge/transcode/validate.py).
    pub schema: Option<Schema>,
    /// Column names that leave a table-shaped batch to the Python transcoder (a dialect refuses it whole).
    pub reserved: Vec<Vec<u8>>,
    /// Table rows written as compact arrays or CSV lines instead of objects (forms.rs).
    pub form: Option<Form>,
}

impl Options {
    pub fn new(mode: Mode, max_value: u64, max_depth: u32, max_columns: usize) -> Options {
        Options {
            mode,
            max_value,
            max_depth,
            max_columns,
            fixed: Vec::new(),
            schema: None,
            reserved: Vec::new(),
            form: None,
        }
    }
}

#[derive(Debug, Default, PartialEq)]
pub struct Decoded {
    /// Every row's JSON, one after the other; row k ends at `ends[k]`.
    pub buf: Vec<u8>,
    pub ends: Vec<usize>,
    pub ops: Option<Vec<i32>>,
    /// The caller's index of each row (None: nothing was left out).
    pub index: Option<Vec<usize>>,
    pub errors: Vec<(usize, String)>,
    /// Rows refused by the declared columns: (caller index, the column's spec, its cell's JSON text, or
    /// None where the cell is null in a column that is not nullable).
    pub invalid: Vec<(usize, usize, Option<Vec<u8>>)>,
    /// The written columns of a table batch whose rows take a form (`Options.form`).
    pub columns: Option<Vec<Vec<u8>>>,
}

enum Fail {
    /// The value's row is rejected with this reason.
    Bad(String),
    /// The Python transcoder decides this request.
    Fallback,
}

type R<T> = Result<T, Fail>;

trait OrFallback<T> {
    fn fb(self) -> R<T>;
}

impl<T> OrFallback<T> for Option<T> {
    fn fb(self) -> R<T> {
        self.ok_or(Fail::Fallback)
    }
}

#[inline]
fn utf8(b: &[u8]) -> R<()> {
    // ASCII, the common case, is checked a word at a time.
    if b.is_ascii() || std::str::from_utf8(b).is_ok() {
        Ok(())
    } else {
        Err(Fail::Fallback)
    }
}

struct Ctx<'o> {
    o: &'o Options,
    /// Whether the request is large enough to hold a value over max_value_bytes.
    long: bool,
}

impl Ctx<'_> {
    fn check_len(&self, n: usize) -> R<()> {
        if self.long && n as u64 > self.o.max_value {
            return Err(Fail::Bad(self.too_long(n)));
        }
        Ok(())
    }

    fn too_long(&self, n: usize) -> String {
        format!(
            "a value of {n} bytes is longer than {} (limits.max_value_bytes)",
            self.o.max_value
        )
    }
}

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
fn field1(b: &[u8]) -> R<Vec<&[u8]>> {
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
fn value(out: &mut Vec<u8>, b: &[u8], depth: u32, cx: &Ctx<'_>, mode: Mode) -> R<()> {
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

/// Column names, checked as the Python transcoder does (a problem: its batch rejection, so `None`), as
/// JSON object key prefixes (`"name":`).
fn keys(names: &[&[u8]], cx: &Ctx<'_>) -> R<Vec<Vec<u8>>> {
    if names.len() > cx.o.max_columns {
        return Err(Fail::Fallback);
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        utf8(n)?;
        if n.is_empty() || !seen.insert(*n) {
            return Err(Fail::Fallback);
        }
        let mut k = Vec::with_capacity(n.len() + 3);
        json::string(&mut k, n);
        k.push(b':');
        out.push(k);
    }
    Ok(out)
}

/// How a batch's columns are written: each one's key, timestamp mode and declared spec, and whether it is
/// written at all (``unknown_columns: drop`` leaves undeclared columns out, after decoding them).
struct Layout {
    keys: Vec<Vec<u8>>,
    modes: Vec<Mode>,
    specs: Vec<Option<usize>>,
    keep: Vec<bool>,
}

fn layout(names: &[&[u8]], cx: &Ctx<'_>) -> R<Layout> {
    let keys = keys(names, cx)?;
    let o = cx.o;
    if names.iter().any(|n| o.reserved.iter().any(|r| r == n)) {
        return Err(Fail::Fallback);
    }
    let modes = names
        .iter()
        .map(|n| {
            if o.fixed.iter().any(|f| f == n) {
                Mode::Rfc3339
            } else {
                o.mode
            }
        })
        .collect();
    let (specs, keep) = match &o.schema {
        None => (vec![None; names.len()], vec![true; names.len()]),
        Some(s) => {
            let specs = s.resolve(names).fb()?;
            let keep = specs.iter().map(Option::is_some).collect();
            (specs, keep)
        }
    };
    Ok(Layout {
        keys,
        modes,
        specs,
        keep,
    })
}

/// The first of a written row's cells (`cells`: each column's span in `buf`, None if dropped) that the
/// declared columns refuse: its column's spec and its text (None: a null that is not allowed).
fn invalid(
    buf: &[u8],
    cells: &[Option<(usize, usize)>],
    l: &Layout,
    cx: &Ctx<'_>,
) -> R<Option<(usize, Option<Vec<u8>>)>> {
    let Some(schema) = &cx.o.schema else {
        return Ok(None);
    };
    let epoch_s = cx.o.mode == Mode::EpochS;
    for (j, cell) in cells.iter().enumerate() {
        let (Some((a, z)), Some(s)) = (cell, l.specs[j]) else {
            continue;
        };
        let text = &buf[*a..*z];
        match validate::check(&schema.specs[s], text, l.modes[j] == Mode::Rfc3339, epoch_s) {
            Ok(()) => {}
            Err(Problem::Null) => return Ok(Some((s, None))),
            Err(Problem::Type) => return Ok(Some((s, Some(text.to_vec())))),
            Err(Problem::Python) => return Err(Fail::Fallback),
        }
    }
    Ok(None)
}

fn row_batch(b: &[u8], cx: &Ctx<'_>) -> R<Decoded> {
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

fn column_batch(b: &[u8], cx: &Ctx<'_>) -> R<Decoded> {
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

/// An IngestRequest's rows as JSON objects; `None`: the Python transcoder decides this request (its
/// payload is another shape, or the batch is rejected whole, or its wire form is one upb merges).
/// `size` is the request's wire size as the service counts it.
pub fn decode(request: &[u8], size: u64, o: &Options) -> Option<Decoded> {
    if o.max_depth > MAX_DEPTH || o.max_depth == 0 {
        return None;
    }
    let cx = Ctx {
        o,
        long: size > o.max_value,
    };
    let mut r = Reader::new(request);
    let mut payload: Option<(u32, &[u8])> = None;
    while !r.done() {
        match r.tag()? {
            (f @ 3..=6, LEN) => {
                if matches!(payload, Some((g, _)) if g == f) {
                    return None;
                }
                payload = Some((f, r.bytes()?));
            }
            (1 | 3..=6, w) if w != LEN => return None,
            (2, w) if w != VARINT => return None,
            (_, w) => r.skip(w)?,
        }
    }
    let out = match payload? {
        (3, b) => row_batch(b, &cx),
        (4, b) => column_batch(b, &cx),
        (6, b) => return crate::jsonrows::json_batch(b, o.max_value, o.max_depth),
        _ => return None,
    };
    out.ok()
}
