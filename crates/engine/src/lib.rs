//! The durable run engine (design §2): tasks run as event-sourced runs, claimed by workers
//! under leases, driven by the agent loop, suspended durably while waiting on people, and
//! resumed from the journal after a crash without repeating a recorded effect.
//!
//! Architecture invariants:
//! - A run's state is [`state::RunState::fold`] over its journal; nothing lives only in memory.
//! - Only the worker holding a run's lease appends to its journal, with its lease epoch;
//!   external inputs (answers, decisions, cancellation) go through the store and wake the run.
//! - Model and tool results are journaled before they are acted on; a `tool_started` without
//!   `tool_finished` is re-run only for idempotent tools, otherwise a human decides.
//! - Every limit is a named setting with a specific message when hit.

pub mod coworkers;
// multi-agent orchestration (issue 15)
pub mod delegation;
// memory (issue 11)
pub mod memory;
// provenance (issue 19)
pub mod provenance;
pub mod runner;
pub mod scheduler;
pub mod schedules;
pub mod settings;
pub mod state;
pub mod tools;
// OpenTelemetry spans of runs (issue 18)
pub mod traces;
pub mod worker;

pub use runner::{Engine, EngineError};
pub use settings::EngineSettings;
