//! ingest-bridge's native transcoder: IngestRequest wire bytes to JSON rows, byte for byte what the
//! Python transcoder writes. The reader has no `unsafe`; the Python binding is in `py`.
#![deny(unsafe_code)]

mod columns;
pub mod decode;
pub mod forms;
pub mod json;
pub mod jsonrows;
mod message;
mod msgcheck;
pub mod peek;
pub mod plan;
mod rows;
mod table;
pub mod timefmt;
pub mod validate;
mod value;
pub mod wire;

#[cfg(feature = "python")]
#[allow(unsafe_code)] // PyO3's generated glue only; no unsafe is written by hand
mod py;
