-- HTTP API: indexes for cursor pagination (newest first, keyed by (created_at_ms, id)) and
-- the dashboard's per-window figures.

CREATE INDEX tasks_created ON tasks(created_at_ms, id);
CREATE INDEX tasks_project ON tasks(project_id, created_at_ms);
CREATE INDEX approvals_task ON approvals(task_id);
CREATE INDEX approvals_created ON approvals(created_at_ms, id);
