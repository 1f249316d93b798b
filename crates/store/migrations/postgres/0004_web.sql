-- Web app and accounts: browser sessions, invitations, and a role cap on API tokens.

-- A token may act with less than its user's role (`coworker tokens create --role viewer`);
-- NULL means the user's own role. The effective role is the lower of the two.
ALTER TABLE api_tokens ADD COLUMN role TEXT CHECK (role IN ('owner', 'admin', 'member', 'viewer'));

-- A signed-in browser. The cookie holds a random secret; only its SHA-256 is stored. The CSRF
-- token is per session and must accompany every state-changing request made with the cookie.
CREATE TABLE sessions (
    id                  UUID PRIMARY KEY,
    token_hash          BYTEA NOT NULL UNIQUE,
    user_id             UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token          TEXT NOT NULL,
    user_agent          TEXT NOT NULL DEFAULT '',
    created_at_ms       BIGINT NOT NULL,
    last_seen_at_ms     BIGINT NOT NULL,
    expires_at_ms       BIGINT NOT NULL,
    revoked_at_ms       BIGINT
);
CREATE INDEX sessions_user ON sessions(user_id);

-- An invitation link: whoever opens it before it expires may create an account with this role.
CREATE TABLE invitations (
    id                  UUID PRIMARY KEY,
    token_hash          BYTEA NOT NULL UNIQUE,
    email               TEXT,
    role                TEXT NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    invited_by_user_id  UUID REFERENCES users(id) ON DELETE SET NULL,
    created_at_ms       BIGINT NOT NULL,
    expires_at_ms       BIGINT NOT NULL,
    accepted_at_ms      BIGINT,
    accepted_user_id    UUID REFERENCES users(id) ON DELETE SET NULL,
    revoked_at_ms       BIGINT
);

-- The task page lists the files a task wrote.
CREATE INDEX files_task ON files(task_id);
