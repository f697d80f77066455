//! JsonBatch rows: the checks bridge/transcode/jsonrows.py makes, with its reasons, on the wire bytes.
//!
//! A row passes when it is at most `max_value_bytes` long, valid JSON, UTF-8, an object at the top level
//! and nested no deeper than `max_depth`; CR and LF (whitespace there: strings cannot hold them) become
//! spaces. The syntax check here is never looser than msgspec's: a row it refuses, or one whose reason
//! would need msgspec's or orjson's own words (a syntax error, a number orjson reads otherwise, nesting
//! near Python's recursion limit), sends the whole request to the Python transcoder.

use crate::decode::Decoded;
use crate::wire::{varints, Reader, LEN};

/// Deeper rows are left to Python: msgspec stops near Python's recursion limit, with its own reason.
const MAX_NESTING: u32 = 256;

/// Why a row fails; `None` from a check: the Python transcoder decides.
pub enum Verdict {
    /// The row passes; `true`: it holds CR or LF (to become spaces).
    Pass(bool),
    Bad(String),
}

/// Bytes a string holds as they are: not `"`, `\\` or a control character (0x80 and up: UTF-8, checked later).
const PLAIN: [bool; 256] = {
    let mut t = [true; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = false;
        i += 1;
    }
    t[b'"' as usize] = false;
    t[b'\\' as usize] = false;
    t
};

/// Whether any of eight bytes may be `"`, `\\` or a control character (never false when one is: a
/// `true` only sends the scan to the byte-by-byte loop).
#[inline]
fn special(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    (below_space | zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\')))) != 0
}

struct Scan<'a> {
    s: &'a [u8],
    i: usize,
    depth: u32,
    deepest: u32,
    /// A number orjson may read otherwise than as a plain int or float (an exponent, many digits).
    odd_number: bool,
    /// CR or LF seen (only whitespace can hold them).
    newline: bool,
}

impl Scan<'_> {
    #[inline]
    fn ws(&mut self) {
        while let Some(&c @ (b' ' | b'\t' | b'\n' | b'\r')) = self.s.get(self.i) {
            self.newline |= c == b'\n' || c == b'\r';
            self.i += 1;
        }
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let c = *self.s.get(self.i)?;
        self.i += 1;
        Some(c)
    }

    fn value(&mut self) -> Option<()> {
        match *self.s.get(self.i)? {
            b'{' => {
                self.enter()?;
                self.i += 1;
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                } else {
                    loop {
                        self.string()?;
                        self.ws();
                        (self.next()? == b':').then_some(())?;
                        self.ws();
                        self.value()?;
                        self.ws();
                        match self.next()? {
                            b',' => self.ws(),
                            b'}' => break,
                            _ => return None,
                        }
                    }
                }
                self.depth -= 1;
                Some(())
            }
            b'[' => {
                self.enter()?;
                self.i += 1;
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                } else {
                    loop {
                        self.value()?;
                        self.ws();
                        match self.next()? {
                            b',' => self.ws(),
                            b']' => break,
                            _ => return None,
                        }
                    }
                }
                self.depth -= 1;
                Some(())
            }
            b'"' => self.string(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        self.deepest = self.deepest.max(self.depth);
        (self.depth <= MAX_NESTING).then_some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.s.get(self.i..end)? == word).then_some(())?;
        self.i = end;
        Some(())
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.s.get(self.i) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Option<()> {
        if self.s[self.i] == b'-' {
            self.i += 1;
        }
        let mut n = match *self.s.get(self.i)? {
            b'0' => {
                self.i += 1;
                1
            }
            b'1'..=b'9' => self.digits(),
            _ => return None,
        };
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            let f = self.digits();
            if f == 0 {
                return None;
            }
            n += f;
        }
        if let Some(b'e' | b'E') = self.s.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.s.get(self.i) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
            self.odd_number = true;
        }
        // Up to 18 digits every reader holds exactly (an int64, a double's shortest form).
        if n > 18 {
            self.odd_number = true;
        }
        // A digit, '.', 'e' right after a number is not a delimiter: the callers' next token check refuses it.
        Some(())
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.s.get(self.i..self.i + 4)?;
        self.i += 4;
        let mut v = 0u32;
        for &c in h {
            v = v * 16 + (c as char).to_digit(16)?;
        }
        Some(v)
    }

    fn string(&mut self) -> Option<()> {
        (self.next()? == b'"').then_some(())?;
        loop {
            // Runs of plain bytes first, eight at a time: most of a row is string text.
            while let Some(w) = self.s.get(self.i..self.i + 8) {
                if special(u64::from_le_bytes(w.try_into().unwrap_or_default())) {
                    break;
                }
                self.i += 8;
            }
            while let Some(&c) = self.s.get(self.i) {
                if !PLAIN[c as usize] {
                    break;
                }
                self.i += 1;
            }
            let c = self.next()?;
            match c {
                b'"' => return Some(()),
                0..=0x1f => return None,
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        let u = self.hex4()?;
                        if (0xdc00..0xe000).contains(&u) {
                            return None; // a low surrogate alone
                        }
                        if (0xd800..0xdc00).contains(&u) {
                            // A high surrogate: a low one must follow.
                            (self.next()? == b'\\' && self.next()? == b'u').then_some(())?;
                            let low = self.hex4()?;
                            (0xdc00..0xe000).contains(&low).then_some(())?;
                        }
                    }
                    _ => return None,
                },
                _ => {}
            }
        }
    }
}

/// The orjson type name of a valid top-level value that is not an object; `None`: orjson may read it
/// otherwise (a number out of its ranges, nesting past its limit).
fn kind(first: u8, scan: &Scan<'_>, raw: &[u8]) -> Option<&'static str> {
    match first {
        b'"' => Some("str"),
        b't' | b'f' => Some("bool"),
        b'n' => Some("NoneType"),
        b'[' if !scan.odd_number && scan.deepest <= 200 => Some("list"),
        b'-' | b'0'..=b'9' if !scan.odd_number => {
            Some(if raw.contains(&b'.') { "float" } else { "int" })
        }
        _ => None,
    }
}

/// One row's verdict as bridge/transcode/jsonrows.py `_problem` gives it; `None`: Python must say.
pub fn check(raw: &[u8], max_value: u64, max_depth: u32) -> Option<Verdict> {
    if raw.len() as u64 > max_value {
        return Some(Verdict::Bad(format!(
            "a value of {} bytes is longer than {max_value} (limits.max_value_bytes)",
            raw.len()
        )));
    }
    let mut scan = Scan {
        s: raw,
        i: 0,
        depth: 0,
        deepest: 0,
        odd_number: false,
        newline: false,
    };
    scan.ws();
    let first = *raw.get(scan.i)?;
    scan.value()?;
    scan.ws();
    if scan.i != raw.len() {
        return None;
    }
    if !raw.is_ascii() {
        if let Err(e) = std::str::from_utf8(raw) {
            return Some(Verdict::Bad(format!(
                "not valid JSON: not UTF-8 at byte {}",
                e.valid_up_to()
            )));
        }
    }
    if first != b'{' {
        return Some(Verdict::Bad(format!(
            "not a JSON object (a JSON {})",
            kind(first, &scan, raw)?
        )));
    }
    if scan.deepest > max_depth {
        return Some(Verdict::Bad(format!(
            "arrays and objects nest deeper than {max_depth} levels (limits.max_depth)"
        )));
    }
    Some(Verdict::Pass(scan.newline))
}

/// A JsonBatch's rows that pass, their ops, caller indices (None: all passed) and the other rows'
/// reasons; `None`: the Python transcoder decides.
pub fn json_batch(b: &[u8], max_value: u64, max_depth: u32) -> Option<Decoded> {
    let mut r = Reader::new(b);
    let mut objects = Vec::new();
    let mut ops = Vec::new();
    while !r.done() {
        match r.tag()? {
            (1, LEN) => objects.push(r.bytes()?),
            (2, w) => varints(&mut r, w, &mut ops)?,
            (1, _) => return None,
            (_, w) => r.skip(w)?,
        }
    }
    if !ops.is_empty() && ops.len() != objects.len() {
        return None; // rejected whole ("json.ops: ... ops for ... rows"): Python's answer
    }
    let mut out = Decoded {
        buf: Vec::with_capacity(b.len()),
        ends: Vec::with_capacity(objects.len()),
        ..Decoded::default()
    };
    let mut index = Vec::new();
    for (i, raw) in objects.iter().enumerate() {
        match check(raw, max_value, max_depth)? {
            Verdict::Pass(newline) => {
                let start = out.buf.len();
                out.buf.extend_from_slice(raw);
                if newline {
                    for c in &mut out.buf[start..] {
                        if *c == b'\n' || *c == b'\r' {
                            *c = b' ';
                        }
                    }
                }
                out.ends.push(out.buf.len());
                index.push(i);
            }
            Verdict::Bad(reason) => out.errors.push((i, reason)),
        }
    }
    // Ops are 32-bit enum values on the wire (open enum: any int32 is kept).
    let ops: Vec<i32> = ops.into_iter().map(|o| o as i32).collect();
    if ops.iter().any(|&o| o != 0) {
        out.ops = Some(if out.errors.is_empty() {
            ops
        } else {
            index.iter().map(|&i| ops[i]).collect()
        });
    }
    if !out.errors.is_empty() {
        out.index = Some(index);
    }
    Some(out)
}
