//! An IngestRequest's payload, read from its wire bytes, to one compact JSON object per row: the bytes,
//! ops, caller indices and row errors that bridge/decode.py and bridge/formats.py give. The shapes are read
//! in `rows` (RowBatch), `columns` (ColumnBatch) and `jsonrows` (JsonBatch); a Value in `value`; a
//! table's columns (keys, timestamp modes, declared columns) in `table`.
//!
//! Anything the Python transcoder would answer with a batch rejection, and any wire form it would merge
//! (a message field given twice), gives `None`: the request then goes through the Python transcoder,
//! which has the answer. Row errors carry the Python transcoder's exact reasons.

use crate::forms::Form;
pub use crate::message::Lookup;
use crate::timefmt::Mode;
use crate::validate::Schema;
use crate::wire::{Reader, LEN, VARINT};

/// The deepest `max_depth` taken natively: orjson refuses deeper documents than about 250.
pub const MAX_DEPTH: u32 = 200;
/// All-null batches larger than this are left to the Python transcoder (rows, and rows times columns).
pub(crate) const ALL_NULL_ROWS: usize = 1 << 16;
pub(crate) const ALL_NULL_CELLS: usize = 1 << 22;

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

pub(crate) enum Fail {
    /// The value's row is rejected with this reason.
    Bad(String),
    /// The Python transcoder decides this request.
    Fallback,
}

pub(crate) type R<T> = Result<T, Fail>;

pub(crate) trait OrFallback<T> {
    fn fb(self) -> R<T>;
}

impl<T> OrFallback<T> for Option<T> {
    fn fb(self) -> R<T> {
        self.ok_or(Fail::Fallback)
    }
}

#[inline]
pub(crate) fn utf8(b: &[u8]) -> R<()> {
    // ASCII, the common case, is checked a word at a time.
    if b.is_ascii() || std::str::from_utf8(b).is_ok() {
        Ok(())
    } else {
        Err(Fail::Fallback)
    }
}

pub(crate) struct Ctx<'o> {
    pub(crate) o: &'o Options,
    /// Whether the request is large enough to hold a value over max_value_bytes.
    pub(crate) long: bool,
}

impl Ctx<'_> {
    pub(crate) fn check_len(&self, n: usize) -> R<()> {
        if self.long && n as u64 > self.o.max_value {
            return Err(Fail::Bad(self.too_long(n)));
        }
        Ok(())
    }

    pub(crate) fn too_long(&self, n: usize) -> String {
        format!(
            "a value of {n} bytes is longer than {} (limits.max_value_bytes)",
            self.o.max_value
        )
    }
}

/// What the native transcoder makes of a request.
pub enum Answer {
    Rows(Decoded),
    /// The Python transcoder decides this request.
    Python,
    /// A MessageBatch of a type whose plan is not compiled yet: compile it, then ask again.
    NeedPlan(String),
}

/// An IngestRequest's rows as JSON objects; `None`: the Python transcoder decides this request (its
/// payload is another shape, or the batch is rejected whole, or its wire form is one upb merges).
/// `size` is the request's wire size as the service counts it.
pub fn decode(request: &[u8], size: u64, o: &Options) -> Option<Decoded> {
    match decode_with(request, size, o, &|_| Lookup::Python) {
        Answer::Rows(d) => Some(d),
        _ => None,
    }
}

/// As `decode`, with the route's MessageBatch plans (`lookup` by type name).
pub fn decode_with(
    request: &[u8],
    size: u64,
    o: &Options,
    lookup: &dyn Fn(&str) -> Lookup,
) -> Answer {
    if o.max_depth > MAX_DEPTH || o.max_depth == 0 {
        return Answer::Python;
    }
    let cx = Ctx {
        o,
        long: size > o.max_value,
    };
    let Some(payload) = payload(request) else {
        return Answer::Python;
    };
    let out = match payload {
        (3, b) => crate::rows::row_batch(b, &cx),
        (4, b) => crate::columns::column_batch(b, &cx),
        (5, b) => {
            return match crate::message::message_batch(b, &cx, lookup) {
                Ok(d) => Answer::Rows(d),
                Err(None) => Answer::Python,
                Err(Some(name)) => Answer::NeedPlan(name),
            }
        }
        (6, b) => {
            return match crate::jsonrows::json_batch(b, o.max_value, o.max_depth) {
                Some(d) => Answer::Rows(d),
                None => Answer::Python,
            }
        }
        _ => return Answer::Python,
    };
    match out {
        Ok(d) => Answer::Rows(d),
        Err(_) => Answer::Python,
    }
}

/// The request's payload: its field number and bytes (`None`: none, or a form upb merges).
fn payload(request: &[u8]) -> Option<(u32, &[u8])> {
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
    payload
}
