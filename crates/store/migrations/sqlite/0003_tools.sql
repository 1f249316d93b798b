-- Tools: encrypted secrets, notifications to people (notify-tier calls, approvals that
-- expired or were escalated, blocked tasks), and coworker policy set through the API.

-- A coworker's policy rules as last set through the API (by an admin or its manager). When
-- set, they replace the rules of its coworkers/*.toml file, which start-up sync never touches.
ALTER TABLE coworkers ADD COLUMN policy_overrides TEXT;

CREATE TABLE secrets (
    name                TEXT PRIMARY KEY NOT NULL,
    nonce               BLOB NOT NULL,
    ciphertext          BLOB NOT NULL,
    created_by          TEXT NOT NULL,
    created_at_ms       BIGINT NOT NULL,
    updated_at_ms       BIGINT NOT NULL,
    last_used_at_ms     BIGINT
);

CREATE TABLE notifications (
    id                  BLOB PRIMARY KEY NOT NULL,
    user_id             BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    task_id             BLOB REFERENCES tasks(id) ON DELETE CASCADE,
    kind                TEXT NOT NULL,
    title               TEXT NOT NULL,
    body                TEXT NOT NULL DEFAULT '{}',
    created_at_ms       BIGINT NOT NULL,
    read_at_ms          BIGINT,
    -- Set by writers that may retry (the engine after a crash): one row per key.
    dedupe_key          TEXT UNIQUE
);
CREATE INDEX notifications_user ON notifications(user_id, read_at_ms, created_at_ms);
