//! The Python module ``bridge._native``.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

use crate::decode::{decode_with, Answer, Decoded, Lookup, Options};
use crate::forms::{Csv, Form};
use crate::plan::{Card, Enum, Field, Message, Plan, Special};
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
    /// MessageBatch plans by type name (None: that type is the Python transcoder's).
    plans: Mutex<HashMap<String, Option<Arc<Plan>>>>,
}

/// A field as msgplan.py flattens it: number, key, kind, card, sub, oneof (-1: none), utf8, rfc3339.
type FieldSpec = (u32, Vec<u8>, u8, u8, usize, i64, bool, bool);
/// A message: its special form and fields. An enum: NullValue?, closed?, (number, JSON name) pairs.
type PlanSpec = (
    String,
    Vec<(u8, Vec<FieldSpec>)>,
    Vec<(bool, bool, Vec<(i32, Vec<u8>)>)>,
);

fn plan(spec: PlanSpec) -> PyResult<Plan> {
    let (full_name, messages, enums) = spec;
    let mut out = Vec::with_capacity(messages.len());
    for (special, fields) in messages {
        let special = match special {
            0 => Special::Plain,
            1 => Special::Timestamp,
            2 => Special::Duration,
            3 => Special::Wrapper,
            _ => Special::Other,
        };
        let mut fs = Vec::with_capacity(fields.len());
        for (number, key, kind, card, sub, oneof, utf8, rfc3339) in fields {
            let card = match card {
                0 => Card::Implicit,
                1 => Card::Presence,
                2 => Card::Repeated,
                _ => Card::Map,
            };
            let oneof = u32::try_from(oneof).ok();
            fs.push(Field {
                number,
                key,
                kind,
                card,
                sub,
                oneof,
                utf8,
                rfc3339,
            });
        }
        out.push(Message::new(special, fs));
    }
    let enums = enums
        .into_iter()
        .map(|(null, closed, names)| Enum {
            null,
            closed,
            names: names.into_iter().collect(),
        })
        .collect();
    let p = Plan {
        full_name,
        messages: out,
        enums,
    };
    p.check().map_err(PyValueError::new_err)?;
    Ok(p)
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
        Ok(Transcoder {
            opts,
            names,
            plans: Mutex::new(HashMap::new()),
        })
    }

    /// Registers the plan of a MessageBatch type (bridge/transcode/msgplan.py), or None: batches of that
    /// type go to the Python transcoder.
    #[pyo3(signature = (type_name, spec))]
    fn add_message(&self, type_name: String, spec: Option<PlanSpec>) -> PyResult<()> {
        let p = spec.map(plan).transpose()?.map(Arc::new);
        self.plans
            .lock()
            .map_err(|_| PyValueError::new_err("the plans' lock is poisoned"))?
            .insert(type_name, p);
        Ok(())
    }

    /// ``(rows, ops or None, caller indices or None, [(index, reason)], [(index, column, cell)], columns)``
    /// of an IngestRequest's wire bytes, or None where the Python transcoder must decide, or a
    /// MessageBatch type's name (a str) whose plan ``add_message`` must give first. Rows are JSON
    /// objects, or with a ``form`` and a table payload, that form's bytes of the written ``columns``.
    fn decode<'py>(
        &self,
        py: Python<'py>,
        request: &Bound<'py, PyBytes>,
        size: u64,
    ) -> PyResult<PyObject> {
        let d = match self.decoded(py, request, size) {
            Ok(d) => d,
            Err(instead) => return Ok(instead),
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
        let out: Out<'py> = (rows, d.ops, d.index, d.errors, invalid, columns);
        Ok(out.into_pyobject(py)?.into_any().unbind())
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
    ) -> PyResult<PyObject> {
        let d = match self.decoded(py, request, size) {
            Ok(d) => d,
            Err(instead) => return Ok(instead),
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
        let out: JoinedOut<'py> = (
            body,
            PyBytes::new(py, &ends),
            d.ops,
            d.index,
            d.errors,
            invalid,
            columns,
        );
        Ok(out.into_pyobject(py)?.into_any().unbind())
    }
}

impl Transcoder {
    /// The decode itself, without the GIL for a large request; a MessageBatch finds its type's plan here.
    fn run(&self, py: Python<'_>, request: &Bound<'_, PyBytes>, size: u64) -> Answer {
        let raw = request.as_bytes();
        let opts = &self.opts;
        let lookup = |name: &str| match self.plans.lock() {
            Ok(plans) => match plans.get(name) {
                Some(Some(p)) => Lookup::Plan(Arc::clone(p)),
                Some(None) => Lookup::Python,
                None => Lookup::Missing,
            },
            Err(_) => Lookup::Python,
        };
        if raw.len() >= RELEASE_GIL {
            py.allow_threads(|| decode_with(raw, size, opts, &lookup))
        } else {
            decode_with(raw, size, opts, &lookup)
        }
    }

    /// The rows, or what Python gets instead of them: None (the Python transcoder decides) or a MessageBatch
    /// type's name whose plan ``add_message`` must give first.
    fn decoded(
        &self,
        py: Python<'_>,
        request: &Bound<'_, PyBytes>,
        size: u64,
    ) -> Result<Decoded, PyObject> {
        match self.run(py, request, size) {
            Answer::Rows(d) => Ok(d),
            Answer::Python => Err(py.None()),
            Answer::NeedPlan(name) => Err(PyString::new(py, &name).into_any().unbind()),
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

/// ``(route, sequence, "rows", "columns", "messages" or "json", row count)`` of a plain request's wire bytes,
/// without building the message; None where upb must parse it (see native/src/peek.rs).
#[pyfunction]
fn peek(request: &Bound<'_, PyBytes>) -> Option<(String, u64, &'static str, u64)> {
    let p = crate::peek::peek(request.as_bytes())?;
    let kind = match p.kind {
        3 => "rows",
        4 => "columns",
        5 => "messages",
        _ => "json",
    };
    Some((p.route, p.sequence, kind, p.rows))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // What this build's Python side may ask of it (2: declared and RFC 3339 columns, reserved names;
    // 3: row forms, and the written columns in what decode returns; 4: MessageBatch plans, the peek of
    // MessageBatch requests; 5: decode_joined, answering a type name where a message plan is missing).
    m.add("ABI", 5)?;
    m.add_class::<Transcoder>()?;
    m.add_function(wrap_pyfunction!(peek, m)?)?;
    Ok(())
}
