//! Coworker's domain vocabulary: typed ids, the enums every layer shares, configuration
//! parsing and validation, and small pure helpers.
//!
//! Architecture invariant: this crate performs no I/O. It never opens a file, a socket or a
//! database, and never reads the environment or the clock on its own: callers pass those in.
//! Everything here is deterministic and unit-testable.

pub mod calendar;
pub mod config;
pub mod coworker;
pub mod doctor;
pub mod domain;
// Email and calendar (issue 16).
pub mod email;
pub mod ids;
// Prometheus series names (issue 18).
pub mod metrics;
pub mod policy;
// Provenance of argument values (issue 19).
pub mod provenance;
pub mod schedule;
// Channels (issue 13).
#[cfg(feature = "channels")]
pub mod channel;
pub mod text;
// OpenTelemetry traces: span records, ids, attribute names, `[traces]` (issue 18).
pub mod trace;

pub use ids::*;
