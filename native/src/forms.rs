//! Table row forms other than a JSON object: a compact JSON array of the row's values (Timeplus'
//! `{"columns": [...], "data": [[...], ...]}`), or one CSV line as bridge/transcode/formats.py writes it
//! (every string quoted, `"` doubled; numbers and booleans as written; nested values as quoted JSON text;
//! null as the target's unquoted token).
//!
//! A row is first written as a JSON object (decode.rs), with each cell's span, so the declared columns
//! check the same text; then `close` re-writes it in the route's form from those cells.

/// How a route's table rows are written (``RowForm`` in bridge/model/rows.py).
#[derive(Clone, Debug, PartialEq)]
pub enum Form {
    /// `[v1,v2,...]`, the cells' JSON text.
    Compact,
    Csv(Csv),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Csv {
    pub delimiter: Vec<u8>,
    /// The target's NULL token, written unquoted.
    pub null: Vec<u8>,
    /// The target's column order (a column the batch lacks is null); None: the batch's own columns.
    pub order: Option<Vec<Vec<u8>>>,
}

/// For each cell of a written row, the batch column it comes from (None: null, the batch lacks it):
/// the kept columns in order, or the CSV form's column order.
pub fn slots(names: &[&[u8]], keep: &[bool], form: &Form) -> Vec<Option<usize>> {
    let kept = || (0..names.len()).filter(|&j| keep[j]).map(Some).collect();
    match form {
        Form::Compact => kept(),
        Form::Csv(c) => match &c.order {
            None => kept(),
            Some(order) => order
                .iter()
                .map(|o| (0..names.len()).find(|&j| keep[j] && names[j] == o.as_slice()))
                .collect(),
        },
    }
}

/// Ends each written row of one batch: `}` for a JSON object, else its re-writing in the route's form.
pub struct Writer<'f> {
    form: Option<&'f Form>,
    slots: Vec<Option<usize>>,
    scratch: Vec<u8>,
}

impl<'f> Writer<'f> {
    pub fn new(names: &[&[u8]], keep: &[bool], form: Option<&'f Form>) -> Writer<'f> {
        Writer {
            form,
            slots: form.map(|f| slots(names, keep, f)).unwrap_or_default(),
            scratch: Vec::new(),
        }
    }

    /// The batch's written columns (the kept ones, in order) where rows take a form; None for objects.
    pub fn columns(&self, names: &[&[u8]], keep: &[bool]) -> Option<Vec<Vec<u8>>> {
        self.form?;
        Some(
            names
                .iter()
                .zip(keep)
                .filter(|(_, &k)| k)
                .map(|(n, _)| n.to_vec())
                .collect(),
        )
    }

    pub fn close(&mut self, buf: &mut Vec<u8>, start: usize, cells: &[Option<(usize, usize)>]) {
        match self.form {
            None => buf.push(b'}'),
            Some(f) => close(buf, start, cells, &self.slots, f, &mut self.scratch),
        }
    }
}

/// Re-writes the row at `buf[start..]` (a JSON object whose cell `j` is at `cells[j]`, None if dropped)
/// in `form`, the cells in `slots` order. `scratch` is reused between rows.
pub fn close(
    buf: &mut Vec<u8>,
    start: usize,
    cells: &[Option<(usize, usize)>],
    slots: &[Option<usize>],
    form: &Form,
    scratch: &mut Vec<u8>,
) {
    scratch.clear();
    let cell = |j: Option<usize>| j.and_then(|j| cells[j]).map(|(a, z)| &buf[a..z]);
    match form {
        Form::Compact => {
            scratch.push(b'[');
            for (k, &j) in slots.iter().enumerate() {
                if k > 0 {
                    scratch.push(b',');
                }
                scratch.extend_from_slice(cell(j).unwrap_or(b"null"));
            }
            scratch.push(b']');
        }
        Form::Csv(c) => {
            for (k, &j) in slots.iter().enumerate() {
                if k > 0 {
                    scratch.extend_from_slice(&c.delimiter);
                }
                csv_cell(scratch, cell(j).unwrap_or(b"null"), &c.null);
            }
        }
    }
    buf.truncate(start);
    buf.extend_from_slice(scratch);
}

/// A JSON value's text as a CSV cell (formats.py ``_raw_cell``).
pub fn csv_cell(out: &mut Vec<u8>, json: &[u8], null: &[u8]) {
    match json.first() {
        Some(b'"') => {
            out.push(b'"');
            unescape_doubling(out, &json[1..json.len() - 1]);
            out.push(b'"');
        }
        Some(b'{' | b'[') => quote(out, json),
        _ if json == b"null" => out.extend_from_slice(null),
        _ => out.extend_from_slice(json),
    }
}

/// `s` in double quotes, each `"` doubled.
fn quote(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    double_quotes(out, s);
    out.push(b'"');
}

fn double_quotes(out: &mut Vec<u8>, s: &[u8]) {
    let mut start = 0;
    for (i, &c) in s.iter().enumerate() {
        if c == b'"' {
            out.extend_from_slice(&s[start..=i]);
            out.push(b'"');
            start = i + 1;
        }
    }
    out.extend_from_slice(&s[start..]);
}

/// The text of a JSON string's body (between its quotes, as json.rs or orjson writes it), with `"`
/// doubled for CSV.
fn unescape_doubling(out: &mut Vec<u8>, s: &[u8]) {
    let mut i = 0;
    let mut start = 0;
    while i < s.len() {
        if s[i] != b'\\' {
            i += 1;
            continue;
        }
        double_quotes(out, &s[start..i]);
        let e = s.get(i + 1).copied().unwrap_or(b'\\');
        i += 2;
        match e {
            b'"' => out.extend_from_slice(b"\"\""),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'u' => {
                let mut code = hex4(s, i);
                i += 4;
                if (0xd800..0xdc00).contains(&code) && s.get(i) == Some(&b'\\') {
                    let low = hex4(s, i + 2);
                    if (0xdc00..0xe000).contains(&low) {
                        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
                        i += 6;
                    }
                }
                let ch = char::from_u32(code).unwrap_or('\u{fffd}');
                let mut b = [0u8; 4];
                double_quotes(out, ch.encode_utf8(&mut b).as_bytes());
            }
            other => out.push(other), // `\\` and `\/`
        }
        start = i;
    }
    double_quotes(out, &s[start.min(s.len())..]);
}

fn hex4(s: &[u8], at: usize) -> u32 {
    s.get(at..at + 4)
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .unwrap_or(0xfffd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(json: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        csv_cell(&mut out, json, b"\\N");
        out
    }

    #[test]
    fn csv_cells_as_formats_py_writes_them() {
        assert_eq!(cell(br#""a""#), br#""a""#);
        assert_eq!(cell(br#""say \"hi\"""#), br#""say ""hi""""#);
        assert_eq!(cell(br#""a\nb\\c\u0001""#), b"\"a\nb\\c\x01\"");
        assert_eq!(cell(br#""""#), br#""""#);
        assert_eq!(cell(b"null"), b"\\N");
        assert_eq!(cell(b"1.5e+16"), b"1.5e+16");
        assert_eq!(cell(b"true"), b"true");
        assert_eq!(cell(br#"{"a":"x"}"#), br#""{""a"":""x""}""#);
        assert_eq!(cell(br#""\ud83d\ude00""#), "\"\u{1f600}\"".as_bytes());
    }

    #[test]
    fn rows_in_the_target_order() {
        let names: [&[u8]; 3] = [b"a", b"b", b"c"];
        let form = Form::Csv(Csv {
            delimiter: b";".to_vec(),
            null: b"NULL".to_vec(),
            order: Some(vec![b"c".to_vec(), b"x".to_vec(), b"a".to_vec()]),
        });
        let s = slots(&names, &[true, true, false], &form);
        assert_eq!(s, vec![None, None, Some(0)]);
        let mut buf = br#"{"a":1,"b":"q"}"#.to_vec();
        let cells = [Some((5, 6)), Some((11, 14)), None];
        close(&mut buf, 0, &cells, &s, &form, &mut Vec::new());
        assert_eq!(buf, b"NULL;NULL;1");
        let mut buf = br#"{"a":1,"b":"q"}"#.to_vec();
        let s = slots(&names, &[true, true, false], &Form::Compact);
        close(&mut buf, 0, &cells, &s, &Form::Compact, &mut Vec::new());
        assert_eq!(buf, br#"[1,"q"]"#);
    }
}
