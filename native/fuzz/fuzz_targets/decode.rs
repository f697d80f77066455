//! The native decoder over arbitrary bytes, under each timestamps mode and limits small and large: it
//! must answer (rows or None) without a panic; every row it writes must be one JSON object, or in a table
//! form (forms.rs) a compact array or a CSV line of UTF-8, with the written columns given. The peek
//! reads the same bytes and must answer without a panic too (tests/test_peek.py holds it to upb).
#![no_main]

use bridge_native::decode::{decode, Options};
use bridge_native::forms::{Csv, Form};
use bridge_native::timefmt::Mode;
use bridge_native::validate::{Schema, Spec, Ty};
use libfuzzer_sys::fuzz_target;

const MODES: [Mode; 5] = [
    Mode::Rfc3339,
    Mode::EpochS,
    Mode::EpochMs,
    Mode::EpochUs,
    Mode::EpochNs,
];

fuzz_target!(|data: &[u8]| {
    // The first byte picks the options, the second the row form; the rest is the request.
    let Some((&pick, data)) = data.split_first() else {
        return;
    };
    let Some((&form, request)) = data.split_first() else {
        return;
    };
    let mut o = Options::new(
        MODES[(pick % 5) as usize],
        [4, 64, 1 << 20][(pick as usize / 5) % 3],
        [1, 3, 32, 200][(pick as usize / 15) % 4],
        if pick & 0x80 != 0 { 2 } else { 1000 },
    );
    if pick & 0x40 != 0 {
        // Declared columns (some names the generators use), dropping the others; one column fixed to RFC 3339.
        let spec = |name: &str, ty, nullable| Spec {
            name: name.as_bytes().to_vec(),
            ty,
            nullable,
        };
        o.schema = Some(Schema {
            specs: vec![
                spec("a", Ty::Int, true),
                spec("b", Ty::Timestamp, true),
                spec("c", Ty::Str, false),
            ],
            drop: true,
        });
        o.fixed = vec![b"b".to_vec()];
    }
    o.form = match form % 4 {
        0 => None,
        1 => Some(Form::Compact),
        k => Some(Form::Csv(Csv {
            delimiter: b";".to_vec(),
            null: b"\\N".to_vec(),
            order: (k == 3).then(|| vec![b"c".to_vec(), b"x".to_vec(), b"a".to_vec()]),
        })),
    };
    if let Some(p) = bridge_native::peek::peek(request) {
        assert!(matches!(p.kind, 3 | 4 | 6)); // RowBatch, ColumnBatch, JsonBatch
    }
    if let Some(d) = decode(request, request.len() as u64, &o) {
        let mut start = 0;
        for &end in &d.ends {
            let row = &d.buf[start..end];
            match (&o.form, &d.columns) {
                (None, _) | (Some(_), None) => {
                    // A JsonBatch's rows are the caller's objects, their edge whitespace kept.
                    let obj = row.trim_ascii();
                    assert!(obj.first() == Some(&b'{') && obj.last() == Some(&b'}'))
                }
                (Some(Form::Compact), Some(_)) => {
                    assert!(row.first() == Some(&b'[') && row.last() == Some(&b']'))
                }
                (Some(Form::Csv(_)), Some(_)) => {}
            }
            assert!(std::str::from_utf8(row).is_ok());
            start = end;
        }
        assert_eq!(start, d.buf.len());
        if let Some(ops) = &d.ops {
            assert_eq!(ops.len(), d.ends.len());
        }
        if let Some(index) = &d.index {
            assert_eq!(index.len(), d.ends.len());
        }
    }
});
