//! The audit trail: deny events from the kernel, decoded into JSON lines that cite the
//! policy rule that decided.

pub mod chain;
pub mod lifecycle;
pub mod ocsf;
pub mod reader;
pub mod record;
pub mod replay;
pub mod rotate;
pub mod sink;
pub mod verify;

pub use record::AuditRecord;
pub use sink::{AuditSink, SinkOptions};
