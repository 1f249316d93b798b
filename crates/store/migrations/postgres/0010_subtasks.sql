-- Multi-agent orchestration (issue 15). A subtask is an ordinary task (tasks.parent_task_id
-- names its parent) plus this row: what the delegating run asked of it. The row is written in
-- the same transaction as the child task and its run, so a child never runs without it.
CREATE TABLE subtasks (
    task_id             UUID PRIMARY KEY REFERENCES tasks(id) ON DELETE CASCADE,
    parent_task_id      UUID NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    -- The delegating run's tool call (its engine key, e.g. t2:call_0).
    parent_call_id      TEXT NOT NULL,
    -- What the delegator wrote in `to`: a handle, or `self`.
    requested_to        TEXT NOT NULL,
    -- Root is depth 0; a subtask of the root is depth 1.
    depth               BIGINT NOT NULL,
    result_schema       JSONB,
    budget_micros_usd   BIGINT,
    created_at_ms       BIGINT NOT NULL
);
CREATE INDEX subtasks_parent ON subtasks(parent_task_id);
CREATE INDEX tasks_parent ON tasks(parent_task_id);

-- Each task keeps its own usage and, beside it, its tree's: itself plus every descendant,
-- added to every ancestor in the same transaction as the task's own usage.
ALTER TABLE tasks ADD COLUMN tree_cost_micros_usd BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN tree_input_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN tree_output_tokens BIGINT NOT NULL DEFAULT 0;
UPDATE tasks SET tree_cost_micros_usd = cost_micros_usd, tree_input_tokens = input_tokens, tree_output_tokens = output_tokens;
