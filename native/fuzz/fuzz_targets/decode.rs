//! The native decoder over arbitrary bytes, under each timestamps mode and limits small and large: it
//! must answer (rows or None) without a panic; every row it writes must be one JSON object, or in a table
//! form (forms.rs) a compact array or a CSV line of UTF-8, with the written columns given. The peek
//! reads the same bytes and must answer without a panic too (tests/test_peek.py holds it to upb).
//! Inputs whose form byte has its high bit set are read as one message of a MessageBatch whose type has a
//! plan of every kind of field (`plan()`); the others as whole requests, a MessageBatch among them taking
//! it too.
#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use bridge_native::decode::{decode_with, Answer, Lookup, Options};
use bridge_native::forms::{Csv, Form};
use bridge_native::plan::*;
use bridge_native::timefmt::Mode;
use bridge_native::validate::{Schema, Spec, Ty};
use libfuzzer_sys::fuzz_target;

fn field(number: u32, kind: u8, card: Card, sub: usize, oneof: Option<u32>) -> Field {
    Field {
        number,
        key: format!("\"f{number}\":").into_bytes(),
        kind,
        card,
        sub,
        oneof,
        utf8: number % 2 == 1,
        rfc3339: number == 20,
    }
}

/// t.M: every scalar kind (implicit, optional, repeated), enums open, closed and NullValue, itself
/// nested and repeated, maps with message, enum and scalar values, Timestamp, Duration, a wrapper,
/// a Struct (left to Python), a oneof, a group, and field numbers past the dense table.
fn plan() -> Arc<Plan> {
    static PLAN: OnceLock<Arc<Plan>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let mut m = Vec::new();
        for kind in DOUBLE..=SINT64 {
            if kind == GROUP || kind == MESSAGE {
                continue;
            }
            m.push(field(u32::from(kind), kind, Card::Implicit, 0, None));
            m.push(field(u32::from(kind) + 100, kind, Card::Presence, 0, None));
            m.push(field(u32::from(kind) + 200, kind, Card::Repeated, 0, None));
        }
        m.push(field(30, ENUM, Card::Repeated, 1, None)); // closed
        m.push(field(31, ENUM, Card::Presence, 2, None)); // NullValue
        m.push(field(32, MESSAGE, Card::Presence, 0, Some(0)));
        m.push(field(33, MESSAGE, Card::Repeated, 0, None));
        m.push(field(34, MESSAGE, Card::Map, 5, None));
        m.push(field(35, MESSAGE, Card::Map, 6, None));
        m.push(field(20, MESSAGE, Card::Presence, 1, Some(0)));
        m.push(field(21, MESSAGE, Card::Repeated, 2, None));
        m.push(field(22, MESSAGE, Card::Presence, 3, None));
        m.push(field(23, MESSAGE, Card::Presence, 4, None));
        m.push(field(24, GROUP, Card::Presence, 0, None));
        m.push(field(1000, STRING, Card::Presence, 0, Some(0)));
        let ts = || {
            vec![
                field(1, INT64, Card::Implicit, 0, None),
                field(2, INT32, Card::Implicit, 0, None),
            ]
        };
        let messages = vec![
            Message::new(Special::Plain, m),
            Message::new(Special::Timestamp, ts()),
            Message::new(Special::Duration, ts()),
            Message::new(
                Special::Wrapper,
                vec![field(1, FLOAT, Card::Implicit, 0, None)],
            ),
            Message::new(Special::Other, vec![]),
            Message::new(
                Special::Plain,
                vec![
                    field(1, STRING, Card::Implicit, 0, None),
                    field(2, MESSAGE, Card::Presence, 0, None),
                ],
            ),
            Message::new(
                Special::Plain,
                vec![
                    field(1, SINT32, Card::Implicit, 0, None),
                    field(2, ENUM, Card::Implicit, 0, None),
                ],
            ),
        ];
        let names = |closed: bool, null: bool| Enum {
            null,
            closed,
            names: HashMap::from([(0, b"\"A\"".to_vec()), (-1, b"\"B\"".to_vec())]),
        };
        let p = Plan {
            full_name: "t.M".into(),
            messages,
            enums: vec![names(false, false), names(true, false), names(false, true)],
        };
        p.check().expect("the fuzz plan is well formed");
        Arc::new(p)
    })
    .clone()
}

fn len_field(out: &mut Vec<u8>, number: u8, body: &[u8]) {
    out.push(number << 3 | 2);
    let mut n = body.len();
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(body);
}

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
    let wrapped;
    let request = if form & 0x80 != 0 {
        // One message of type t.M in a MessageBatch request, on a route of JSON object rows (a route with
        // declared columns or table bodies leaves messages to Python).
        o.schema = None;
        o.form = None;
        let mut batch = Vec::new();
        len_field(&mut batch, 1, b"t.M");
        len_field(&mut batch, 2, request);
        let mut r = Vec::new();
        len_field(&mut r, 5, &batch);
        wrapped = r;
        &wrapped[..]
    } else {
        request
    };
    if let Some(p) = bridge_native::peek::peek(request) {
        assert!(matches!(p.kind, 3..=6)); // RowBatch, ColumnBatch, MessageBatch, JsonBatch
    }
    let answer = decode_with(request, request.len() as u64, &o, &|name| {
        if name == "t.M" {
            Lookup::Plan(plan())
        } else {
            Lookup::Missing
        }
    });
    if let Answer::Rows(d) = answer {
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
