-- Slack (issue 13). Every Slack event is recorded before it is acknowledged; the two unique
-- keys make "one reply per message, ever" a database fact: Slack's retries carry the same
-- event_id, and the app_mention/message twins of one message share (team, channel, ts).
CREATE TABLE slack_events (
    event_id            TEXT PRIMARY KEY NOT NULL,
    team_id             TEXT NOT NULL,
    channel_id          TEXT NOT NULL,
    message_ts          TEXT NOT NULL,
    payload             TEXT NOT NULL,
    received_at_ms      BIGINT NOT NULL,
    processed_at_ms     BIGINT,
    UNIQUE (team_id, channel_id, message_ts)
);
CREATE INDEX slack_events_pending ON slack_events(processed_at_ms, received_at_ms);

-- A task whose conversation is a Slack thread; delivered_seq is how far its journal has been
-- rendered into the thread. Several tasks may share a thread (follow-ups after one is done).
CREATE TABLE slack_threads (
    task_id             BLOB PRIMARY KEY NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    team_id             TEXT NOT NULL,
    channel_id          TEXT NOT NULL,
    thread_ts           TEXT NOT NULL,
    slack_user_id       TEXT NOT NULL,
    delivered_seq       BIGINT NOT NULL DEFAULT 0,
    finished_at_ms      BIGINT,
    created_at_ms       BIGINT NOT NULL
);
CREATE INDEX slack_threads_thread ON slack_threads(team_id, channel_id, thread_ts, created_at_ms);
CREATE INDEX slack_threads_active ON slack_threads(finished_at_ms);

-- Every message the node posts to Slack, keyed by what it is (ack:<task>, result:<task>:0,
-- approval:<id>…). The intent row is written before chat.postMessage, so a retry or a restart
-- looks for the message (by its metadata) instead of posting it again.
CREATE TABLE slack_posts (
    post_key            TEXT PRIMARY KEY NOT NULL,
    task_id             BLOB,
    approval_id         BLOB,
    channel_id          TEXT NOT NULL,
    thread_ts           TEXT,
    message_ts          TEXT,
    state               TEXT NOT NULL CHECK (state IN ('intent', 'posted', 'failed')),
    resolved_at_ms      BIGINT,
    created_at_ms       BIGINT NOT NULL,
    updated_at_ms       BIGINT NOT NULL
);
CREATE INDEX slack_posts_approvals ON slack_posts(approval_id, resolved_at_ms);

-- Where a task's result goes besides the web inbox (`coworker task new --deliver-to`).
CREATE TABLE task_deliveries (
    task_id             BLOB PRIMARY KEY NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    target              TEXT NOT NULL,
    delivered_at_ms     BIGINT,
    -- Held until then (a scheduled run's result outside its coworker's working hours).
    not_before_ms       BIGINT,
    created_at_ms       BIGINT NOT NULL
);
CREATE INDEX task_deliveries_pending ON task_deliveries(delivered_at_ms);
