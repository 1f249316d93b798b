-- Run engine support: external inputs for waiting runs, cancellation requests, approval
-- details, and per-coworker daily spend for the daily cost cap.

ALTER TABLE runs ADD COLUMN cancel_requested_at_ms BIGINT;

-- Inputs from outside the lease holder (answers, human messages). The worker that owns the
-- run moves them into the journal; nothing else ever writes run_events.
CREATE TABLE run_inputs (
    id              UUID PRIMARY KEY,
    run_id          UUID NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,
    payload         JSONB NOT NULL,
    from_user_id    UUID REFERENCES users(id),
    created_at_ms   BIGINT NOT NULL,
    consumed_at_ms  BIGINT
);
CREATE INDEX run_inputs_pending ON run_inputs(run_id, consumed_at_ms);

ALTER TABLE approvals ADD COLUMN call_id TEXT;
ALTER TABLE approvals ADD COLUMN requested_by_user_id UUID REFERENCES users(id);
ALTER TABLE approvals ADD COLUMN escalate_to_user_id UUID REFERENCES users(id);
CREATE INDEX approvals_run ON approvals(run_id, status);

CREATE TABLE coworker_spend (
    coworker_id     UUID NOT NULL REFERENCES coworkers(id) ON DELETE CASCADE,
    day             TEXT NOT NULL,
    cost_micros_usd BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (coworker_id, day)
);
