//! The Python module ``bridge._native``.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::decode::{decode, Options};
use crate::timefmt::Mode;

/// Requests of at least this many bytes are decoded without the GIL (other threads may run meanwhile).
const RELEASE_GIL: usize = 64 * 1024;

/// One route's transcoder: its timestamps option and limits.
#[pyclass(frozen, module = "bridge._native")]
struct Transcoder {
    opts: Options,
}

type Out<'py> = (
    Bound<'py, PyList>,
    Option<Vec<i32>>,
    Option<Vec<usize>>,
    Vec<(usize, String)>,
);

#[pymethods]
impl Transcoder {
    #[new]
    fn new(mode: &str, max_value_bytes: u64, max_depth: u32, max_columns: usize) -> PyResult<Self> {
        let mode = Mode::parse(mode).ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err(format!("unknown timestamps mode {mode:?}"))
        })?;
        Ok(Transcoder {
            opts: Options {
                mode,
                max_value: max_value_bytes,
                max_depth,
                max_columns,
            },
        })
    }

    /// ``(rows as JSON object bytes, ops or None, caller indices or None, [(index, reason)])`` of an
    /// IngestRequest's wire bytes, or None where the Python transcoder must decide.
    fn decode<'py>(
        &self,
        py: Python<'py>,
        request: &Bound<'py, PyBytes>,
        size: u64,
    ) -> PyResult<Option<Out<'py>>> {
        let raw = request.as_bytes();
        let opts = &self.opts;
        let d = if raw.len() >= RELEASE_GIL {
            py.allow_threads(|| decode(raw, size, opts))
        } else {
            decode(raw, size, opts)
        };
        let Some(d) = d else { return Ok(None) };
        // Built at its full length at once (appending one by one costs a resize now and then).
        let rows = PyList::new(
            py,
            d.ends.iter().enumerate().map(|(k, &end)| {
                let start = if k == 0 { 0 } else { d.ends[k - 1] };
                PyBytes::new(py, &d.buf[start..end])
            }),
        )?;
        Ok(Some((rows, d.ops, d.index, d.errors)))
    }
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
    m.add_class::<Transcoder>()?;
    m.add_function(wrap_pyfunction!(peek, m)?)?;
    Ok(())
}
