//! A table-shaped batch's columns: their names checked as JSON keys, each one's timestamp mode (the route's
//! RFC 3339 columns), its declared column, and the check of a written row against the declared columns.

use crate::decode::{Ctx, Fail, OrFallback, R};
use crate::json;
use crate::timefmt::Mode;
use crate::validate::{self, Problem};

/// Column names, checked as the Python transcoder does (a problem: its batch rejection, so `None`), as
/// JSON object key prefixes (`"name":`).
pub(crate) fn keys(names: &[&[u8]], cx: &Ctx<'_>) -> R<Vec<Vec<u8>>> {
    if names.len() > cx.o.max_columns {
        return Err(Fail::Fallback);
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        crate::decode::utf8(n)?;
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
pub(crate) struct Layout {
    pub(crate) keys: Vec<Vec<u8>>,
    pub(crate) modes: Vec<Mode>,
    pub(crate) specs: Vec<Option<usize>>,
    pub(crate) keep: Vec<bool>,
}

pub(crate) fn layout(names: &[&[u8]], cx: &Ctx<'_>) -> R<Layout> {
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
pub(crate) fn invalid(
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
