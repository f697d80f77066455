//! The Python module ``bridge._native``.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::decode::{decode, Decoded, Options};
use crate::forms::{Csv, Form};
use crate::timefmt::Mode;
use crate::validate::{Schema, Spec, Ty};

/// Requests of at least this many bytes are decoded without the GIL (other threads may run meanwhile).
const RELEASE_GIL: usize = 64 * 1024;

/// One route's transcoder: its timestamps option, limits, RFC 3339 columns and declared columns.
#[pyclass(frozen, module = "bridge._native")]
struct Transcoder {
    opts: Options,
    /// The declared columns' names, to name a refused row's column.
    names: Vec<String>,
}

/// Cells a declared column refused: (row, column name, the cell's JSON or None for a null).
type Invalid<'py> = Vec<(usize, String, Option<Bound<'py, PyBytes>>)>;

type Out<'py> = (
    Bound<'py, PyList>,
    Option<Vec<i32>>,
    Option<Vec<usize>>,
    Vec<(usize, String)>,
    Invalid<'py>,
    Option<Vec<String>>,
);

type JoinedOut<'py> = (
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Option<Vec<i32>>,
    Option<Vec<usize>>,
    Vec<(usize, String)>,
    Invalid<'py>,
    Option<Vec<String>>,
);

/// A ``RowForm`` as ``(kind, delimiter, null, order)``: ``compact``, or ``csv`` with its delimiter, NULL
/// token and the target's column order (None: the batch's own).
type FormArg = (String, String, String, Option<Vec<String>>);

#[pymethods]
impl Transcoder {
    /// ``fixed``: columns written as RFC 3339 whatever ``mode``; ``columns``: declared columns as
    /// ``(name, type, nullable)``, ``drop`` for ``unknown_columns: drop``; ``reserved``: column names
    /// that leave a batch to the Python transcoder; ``form``: table rows as compact arrays or CSV lines.
    #[new]
    #[pyo3(signature = (mode, max_value_bytes, max_depth, max_columns, fixed=Vec::new(), columns=None,
                        drop=false, reserved=Vec::new(), form=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        mode: &str,
        max_value_bytes: u64,
        max_depth: u32,
        max_columns: usize,
        fixed: Vec<String>,
        columns: Option<Vec<(String, String, bool)>>,
        drop: bool,
        reserved: Vec<String>,
        form: Option<FormArg>,
    ) -> PyResult<Self> {
        let bad = |what: String| pyo3::exceptions::PyValueError::new_err(what);
        let mode =
            Mode::parse(mode).ok_or_else(|| bad(format!("unknown timestamps mode {mode:?}")))?;
        let mut opts = Options::new(mode, max_value_bytes, max_depth, max_columns);
        opts.fixed = fixed.into_iter().map(String::into_bytes).collect();
        opts.reserved = reserved.into_iter().map(String::into_bytes).collect();
        opts.form = match form {
            None => None,
            Some((kind, _, _, _)) if kind == "compact" => Some(Form::Compact),
            Some((kind, delimiter, null, order)) if kind == "csv" => Some(Form::Csv(Csv {
                delimiter: delimiter.into_bytes(),
                null: null.into_bytes(),
                order: order.map(|o| o.into_iter().map(String::into_bytes).collect()),
            })),
            Some((kind, ..)) => return Err(bad(format!("unknown row form {kind:?}"))),
        };
        let mut names = Vec::new();
        if let Some(columns) = columns {
            let mut specs = Vec::with_capacity(columns.len());
            for (name, ty, nullable) in columns {
                let ty =
                    Ty::parse(&ty).ok_or_else(|| bad(format!("unknown column type {ty:?}")))?;
                specs.push(Spec {
                    name: name.clone().into_bytes(),
                    ty,
                    nullable,
                });
                names.push(name);
            }
            opts.schema = Some(Schema { specs, drop });
        }
        Ok(Transcoder { opts, names })
    }

    /// ``(rows, ops or None, caller indices or None, [(index, reason)], [(index, column, cell)], columns)``
    /// of an IngestRequest's wire bytes, or None where the Python transcoder must decide. Rows are JSON
    /// objects, or with a ``form`` and a table payload, that form's bytes of the written ``columns``.
    fn decode<'py>(
        &self,
        py: Python<'py>,
        request: &Bound<'py, PyBytes>,
        size: u64,
    ) -> PyResult<Option<Out<'py>>> {
        let Some(d) = self.run(py, request, size) else {
            return Ok(None);
        };
        // Built at its full length at once (appending one by one costs a resize now and then).
        let rows = PyList::new(
            py,
            d.ends.iter().enumerate().map(|(k, &end)| {
                let start = if k == 0 { 0 } else { d.ends[k - 1] };
                PyBytes::new(py, &d.buf[start..end])
            }),
        )?;
        let invalid = self.invalid(py, d.invalid);
        let columns = written(d.columns);
        Ok(Some((rows, d.ops, d.index, d.errors, invalid, columns)))
    }

    /// As ``decode``, the rows in one buffer: ``(body, ends, ops or None, caller indices or None,
    /// [(index, reason)], refused cells, columns)``. ``body`` holds each row followed by a newline; ``ends`` holds, as
    /// native-endian u64s, the offset just past each row's newline. An NDJSON body of consecutive rows is
    /// then one slice of it, and no Python object is made per row (bridge/model/rows.py ``Joined``).
    fn decode_joined<'py>(
        &self,
        py: Python<'py>,
        request: &Bound<'py, PyBytes>,
        size: u64,
    ) -> PyResult<Option<JoinedOut<'py>>> {
        let Some(d) = self.run(py, request, size) else {
            return Ok(None);
        };
        let body = PyBytes::new_with(py, d.buf.len() + d.ends.len(), |out| {
            let (mut at, mut start) = (0, 0);
            for &end in &d.ends {
                let row = &d.buf[start..end];
                out[at..at + row.len()].copy_from_slice(row);
                at += row.len();
                out[at] = b'\n';
                at += 1;
                start = end;
            }
            Ok(())
        })?;
        let mut ends = Vec::with_capacity(d.ends.len() * 8);
        for (k, &end) in d.ends.iter().enumerate() {
            ends.extend_from_slice(&((end + k + 1) as u64).to_ne_bytes());
        }
        let invalid = self.invalid(py, d.invalid);
        let columns = written(d.columns);
        Ok(Some((
            body,
            PyBytes::new(py, &ends),
            d.ops,
            d.index,
            d.errors,
            invalid,
            columns,
        )))
    }
}

impl Transcoder {
    /// The decode itself, without the GIL for a large request.
    fn run(&self, py: Python<'_>, request: &Bound<'_, PyBytes>, size: u64) -> Option<Decoded> {
        let raw = request.as_bytes();
        let opts = &self.opts;
        if raw.len() >= RELEASE_GIL {
            py.allow_threads(|| decode(raw, size, opts))
        } else {
            decode(raw, size, opts)
        }
    }

    fn invalid<'py>(
        &self,
        py: Python<'py>,
        cells: Vec<(usize, usize, Option<Vec<u8>>)>,
    ) -> Invalid<'py> {
        cells
            .into_iter()
            .map(|(i, s, cell)| (i, self.names[s].clone(), cell.map(|c| PyBytes::new(py, &c))))
            .collect()
    }
}

/// The written columns' names (checked UTF-8 by decode.rs keys()), for rows in a ``form``.
fn written(columns: Option<Vec<Vec<u8>>>) -> Option<Vec<String>> {
    columns.map(|c| {
        c.into_iter()
            .map(|n| String::from_utf8_lossy(&n).into_owned())
            .collect()
    })
}

/// ``(route, sequence, "rows", "columns" or "json", row count)`` of a plain RowBatch, ColumnBatch or JsonBatch request's wire
/// bytes, without building the message; None where upb must parse it (see native/src/peek.rs).
#[pyfunction]
fn peek(request: &Bound<'_, PyBytes>) -> Option<(String, u64, &'static str, u64)> {
    let p = crate::peek::peek(request.as_bytes())?;
    let kind = match p.kind {
        3 => "rows",
        4 => "columns",
        _ => "json",
    };
    Some((p.route, p.sequence, kind, p.rows))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // What this build's Python side may ask of it (2: declared and RFC 3339 columns, reserved names;
    // 3: row forms, and the written columns in what decode returns; 4: decode_joined).
    m.add("ABI", 4)?;
    m.add_class::<Transcoder>()?;
    m.add_function(wrap_pyfunction!(peek, m)?)?;
    Ok(())
}
