//! eksaudit: analytics and alerting for Amazon EKS control-plane audit logs.
//!
//! Data flows `source` → `decode` → `query`:
//! - [`source`] finds audit events in files (every format CloudWatch exports
//!   in, gzip or not) and yields raw messages with their origin;
//! - [`decode`] turns chunks of messages into Arrow batches of the one fixed
//!   [`schema`];
//! - [`query`] runs SQL over the table `audit` with DataFusion;
//! - [`cli`] is the command line on top; [`report`] carries input problems
//!   to the user; [`synth`] writes synthetic logs for benchmarks; [`rbac`]
//!   makes least-privilege RBAC from what identities did.

pub mod alerts;
pub mod cli;
pub mod daemon;
pub mod decode;
pub mod error;
pub mod failpoint;
pub mod insights;
pub mod lake;
mod memory;
pub mod page;
pub mod query;
pub mod rbac;
pub mod report;
pub mod schema;
pub mod source;
pub mod suggest;
pub mod synth;

pub use decode::Decoder;
pub use error::{Error, Result};
pub use report::Report;
pub use schema::audit_schema;
