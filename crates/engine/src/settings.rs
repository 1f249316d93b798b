//! Engine settings with their defaults (`[engine]` in `coworker.toml`).

use coworker_core::policy::TierDefaults;

/// Tuning and limits for the worker pool and the agent loop.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Concurrent runs per process.
    pub workers: usize,
    /// Lease length, in ms: a crashed worker's runs are taken over after this.
    pub lease_ttl_ms: i64,
    /// Heartbeat period, in ms (well under the lease).
    pub heartbeat_ms: u64,
    /// Fallback poll period when no wake-up arrives, in ms.
    pub poll_interval_ms: u64,
    /// Largest tool result put into the model's context, in bytes; the rest is cut with a
    /// note.
    pub max_tool_result_bytes: usize,
    /// Most output tokens asked of one model call.
    pub max_output_tokens: u32,
    /// Spend share of the task budget, in percent, at which the model is told to wrap up.
    pub wrap_up_percent: i64,
    /// Tiers by risk class.
    pub tiers: TierDefaults,
    /// Events read per page when rebuilding a run.
    pub journal_page: i64,
    /// How many times deliverables that fail validation go back to the model before the
    /// problems are surfaced to the human and the task fails undelivered.
    pub max_validation_retries: u32,
    /// Limits on delegation between coworkers (issue 15).
    pub delegation: crate::delegation::DelegationLimits,
    /// Provenance checks (`[policy] provenance`, issue 19).
    pub provenance: coworker_core::domain::ProvenanceMode,
    /// Longest a run's first model call waits for tool sources it may use that are still
    /// starting (an MCP server's first connection), in ms; past it the run goes on without
    /// their tools.
    pub max_tool_source_wait_ms: u64,
    /// How long a run waits before it is tried again after the database failed under it
    /// (a tool call that could not reach it, a journal write that was cut off), in ms.
    pub unavailable_retry_ms: i64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            workers: 4,
            lease_ttl_ms: 30_000,
            heartbeat_ms: 10_000,
            poll_interval_ms: 5_000,
            max_tool_result_bytes: 16 * 1024,
            max_output_tokens: 4_096,
            wrap_up_percent: 80,
            tiers: TierDefaults::default(),
            journal_page: 5_000,
            max_validation_retries: 2,
            delegation: Default::default(),
            provenance: Default::default(),
            max_tool_source_wait_ms: 30_000,
            unavailable_retry_ms: 2_000,
        }
    }
}
