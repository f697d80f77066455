//! A MessageBatch type's plan, compiled once per type: its fields and those of every message and enum
//! it holds, flattened by the Python side from the route's descriptor pool
//! (bridge/transcode/msgplan.py), so that presence, packing and UTF-8 rules are upb's own reading of
//! the descriptors, never a second one.

use std::collections::HashMap;

/// Field types: google.protobuf.FieldDescriptorProto.Type's numbers.
pub const DOUBLE: u8 = 1;
pub const FLOAT: u8 = 2;
pub const INT64: u8 = 3;
pub const UINT64: u8 = 4;
pub const INT32: u8 = 5;
pub const FIXED64: u8 = 6;
pub const FIXED32: u8 = 7;
pub const BOOL: u8 = 8;
pub const STRING: u8 = 9;
pub const GROUP: u8 = 10;
pub const MESSAGE: u8 = 11;
pub const BYTES: u8 = 12;
pub const UINT32: u8 = 13;
pub const ENUM: u8 = 14;
pub const SFIXED32: u8 = 15;
pub const SFIXED64: u8 = 16;
pub const SINT32: u8 = 17;
pub const SINT64: u8 = 18;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Card {
    /// Written as its default when absent (proto3 implicit presence).
    Implicit,
    /// Written as null when absent (messages, oneof members, `optional`, proto2).
    Presence,
    Repeated,
    /// A map field; `sub` is its entry message (key: field 1, value: field 2).
    Map,
}

/// How a message type is written when it is a field's value (the row type itself is always `Plain`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Special {
    Plain,
    Timestamp,
    Duration,
    /// google.protobuf.*Value: its field `value`.
    Wrapper,
    /// Struct, Value, ListValue, FieldMask, Any: left to the Python transcoder where present.
    Other,
}

#[derive(Debug)]
pub struct Field {
    pub number: u32,
    /// The JSON object key and colon: `"name":`.
    pub key: Vec<u8>,
    pub kind: u8,
    pub card: Card,
    /// The message (kinds MESSAGE, GROUP, and maps) or enum (ENUM) this field refers to.
    pub sub: usize,
    /// The oneof it belongs to, by index in its message.
    pub oneof: Option<u32>,
    /// A string upb checks as UTF-8 (proto3, or editions' VERIFY).
    pub utf8: bool,
    /// A Timestamp written as RFC 3339 whatever the `timestamps` option (the route's fixed columns).
    pub rfc3339: bool,
}

#[derive(Debug)]
pub struct Message {
    pub special: Special,
    pub fields: Vec<Field>,
    /// Field position by number, for numbers below its length (`u32::MAX`: none); larger ones are
    /// looked up in `sparse`.
    dense: Vec<u32>,
    sparse: Vec<(u32, u32)>,
    /// Whether a oneof holds any of its fields.
    pub has_oneof: bool,
}

impl Message {
    pub fn new(special: Special, fields: Vec<Field>) -> Message {
        let mut dense = Vec::new();
        let mut sparse = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            let n = f.number as usize;
            if n < 256 {
                if dense.len() <= n {
                    dense.resize(n + 1, u32::MAX);
                }
                dense[n] = i as u32;
            } else {
                sparse.push((f.number, i as u32));
            }
        }
        sparse.sort_unstable();
        let has_oneof = fields.iter().any(|f| f.oneof.is_some());
        Message {
            special,
            fields,
            dense,
            sparse,
            has_oneof,
        }
    }

    /// The position of the field with this number.
    #[inline]
    pub fn find(&self, number: u32) -> Option<usize> {
        if let Some(&i) = self.dense.get(number as usize) {
            return (i != u32::MAX).then_some(i as usize);
        }
        self.sparse
            .binary_search_by_key(&number, |&(n, _)| n)
            .ok()
            .map(|k| self.sparse[k].1 as usize)
    }
}

#[derive(Debug)]
pub struct Enum {
    /// google.protobuf.NullValue: always null.
    pub null: bool,
    /// A closed (proto2) enum: upb keeps a number it does not define as an unknown field.
    pub closed: bool,
    /// Each number's name as a JSON string.
    pub names: HashMap<i32, Vec<u8>>,
}

#[derive(Debug)]
pub struct Plan {
    /// The type's full name, as upb's parse errors name it.
    pub full_name: String,
    /// `messages[0]` is the row type.
    pub messages: Vec<Message>,
    pub enums: Vec<Enum>,
}

/// The wire type a field of this kind is written with (GROUP: the start-group type).
pub fn wire_type(kind: u8) -> u8 {
    match kind {
        DOUBLE | FIXED64 | SFIXED64 => 1,
        FLOAT | FIXED32 | SFIXED32 => 5,
        STRING | BYTES | MESSAGE => 2,
        GROUP => 3,
        _ => 0,
    }
}

/// Whether a repeated field of this kind may come as one packed run.
pub fn packable(kind: u8) -> bool {
    !matches!(kind, STRING | BYTES | MESSAGE | GROUP)
}

impl Plan {
    /// Checks that every reference stays inside the plan (it comes from Python: a fault there must not
    /// become a panic here).
    pub fn check(&self) -> Result<(), String> {
        if self.messages.is_empty() {
            return Err("a plan needs its row type".into());
        }
        for m in &self.messages {
            for f in &m.fields {
                let ok = match f.kind {
                    MESSAGE | GROUP => f.sub < self.messages.len(),
                    ENUM => f.sub < self.enums.len(),
                    DOUBLE..=SINT64 => true,
                    _ => false,
                };
                if !ok
                    || (f.card == Card::Map && (f.kind != MESSAGE || map_entry(self, f).is_none()))
                {
                    return Err(format!("field {} of the plan is malformed", f.number));
                }
                if m.special == Special::Wrapper && (m.fields.len() != 1 || f.number != 1) {
                    return Err("a wrapper type holds its field value only".into());
                }
            }
        }
        Ok(())
    }
}

/// A map field's entry message: its key field (number 1) and value field (number 2).
pub fn map_entry<'p>(plan: &'p Plan, f: &Field) -> Option<(&'p Field, &'p Field)> {
    let e = plan.messages.get(f.sub)?;
    let key = e.fields.iter().find(|g| g.number == 1)?;
    let value = e.fields.iter().find(|g| g.number == 2)?;
    (e.fields.len() == 2
        && matches!(
            key.kind,
            INT64
                | UINT64
                | INT32
                | FIXED64
                | FIXED32
                | BOOL
                | STRING
                | UINT32
                | SFIXED32
                | SFIXED64
                | SINT32
                | SINT64
        )
        && value.kind != GROUP)
        .then_some((key, value))
}
