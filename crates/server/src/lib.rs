//! A Coworker node: opens the store, performs first-run bootstrap, and serves the HTTP API
//! plus `/healthz`, `/readyz` and `/metrics` until told to stop.
//!
//! Architecture invariants:
//! - Everything a node does at start-up lives in [`node::Node::start`], so `coworker serve`
//!   and the test kit boot exactly the same thing.
//! - Every `/api/v1` route requires a bearer token or a session cookie (with its CSRF token on
//!   state-changing requests); unauthenticated routes are health, readiness, metrics, the
//!   OpenAPI document, static assets and the sign-in pages.
//! - Secrets (tokens) are never logged; only their SHA-256 hashes are stored.

pub mod accounts;
pub mod api;
pub mod audit;
pub mod auth;
// Backups (issue 18).
pub mod backup;
// Files on S3-compatible storage (issue 18).
pub mod blobs;
pub mod bootstrap;
// Channels (issue 13).
pub mod channels;
// Connectors (issue 17).
pub mod connections;
pub mod datadir;
pub mod doctor;
pub mod error;
pub mod events;
pub mod files;
pub mod health;
pub mod hooks;
// Email and calendar (issue 16).
#[cfg(feature = "email")]
pub mod mail;
// memory (issue 11)
pub mod memory;
pub mod metrics;
pub mod node;
// OAuth connections (issue 17).
pub mod oauth;
pub mod openapi;
pub mod pagination;
pub mod passwords;
pub mod policy;
pub mod ratelimit;
pub mod schedules;
pub mod shutdown;
// Multi-agent orchestration (issue 15).
pub mod subtasks;
pub mod templates;
// OpenTelemetry traces over OTLP (issue 18).
pub mod traces;
pub mod web;
pub mod work;

pub use error::{ApiError, NodeError};
pub use node::{Node, NodeOptions, RunningNode};
