-- Core tables of design §1. Ids are UUIDv7 (16-byte UUID here, uuid on PostgreSQL); times are
-- Unix epoch milliseconds; money is integer micro-dollars; JSON is JSONB.

CREATE TABLE users (
    id              UUID PRIMARY KEY,
    email           TEXT UNIQUE,
    display_name    TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    password_hash   TEXT,
    slack_user_id   TEXT UNIQUE,
    disabled        BOOLEAN NOT NULL DEFAULT FALSE,
    created_at_ms   BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id              UUID PRIMARY KEY,
    user_id         UUID REFERENCES users(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('api', 'signin', 'owner_credential')),
    token_hash      BYTEA NOT NULL UNIQUE,
    created_at_ms   BIGINT NOT NULL,
    last_used_at_ms BIGINT,
    expires_at_ms   BIGINT,
    revoked_at_ms   BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

CREATE TABLE coworkers (
    id              UUID PRIMARY KEY,
    handle          TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    job_description TEXT NOT NULL DEFAULT '',
    manager_user_id UUID REFERENCES users(id),
    timezone        TEXT NOT NULL DEFAULT 'UTC',
    settings        JSONB NOT NULL DEFAULT '{}',
    archived_at_ms  BIGINT,
    created_at_ms   BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL
);

CREATE TABLE projects (
    id              UUID PRIMARY KEY,
    slug            TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    shared_context  TEXT NOT NULL DEFAULT '',
    archived_at_ms  BIGINT,
    created_at_ms   BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL
);

CREATE TABLE project_members (
    project_id      UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    member_kind     TEXT NOT NULL CHECK (member_kind IN ('user', 'coworker')),
    member_id       UUID NOT NULL,
    added_at_ms     BIGINT NOT NULL,
    PRIMARY KEY (project_id, member_kind, member_id)
);

CREATE TABLE tasks (
    id                  UUID PRIMARY KEY,
    coworker_id         UUID NOT NULL REFERENCES coworkers(id),
    delegator_user_id   UUID REFERENCES users(id),
    project_id          UUID REFERENCES projects(id),
    parent_task_id      UUID REFERENCES tasks(id),
    brief               TEXT NOT NULL,
    priority            TEXT NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    due_at_ms           BIGINT,
    origin_kind         TEXT NOT NULL,
    origin_ref          TEXT,
    idempotency_key     TEXT UNIQUE,
    status              TEXT NOT NULL CHECK (status IN ('queued', 'running', 'waiting', 'blocked', 'done', 'failed', 'cancelled')),
    result              JSONB,
    cost_micros_usd     BIGINT NOT NULL DEFAULT 0,
    input_tokens        BIGINT NOT NULL DEFAULT 0,
    output_tokens       BIGINT NOT NULL DEFAULT 0,
    created_at_ms       BIGINT NOT NULL,
    updated_at_ms       BIGINT NOT NULL,
    finished_at_ms      BIGINT
);
CREATE INDEX tasks_status ON tasks(status, created_at_ms);
CREATE INDEX tasks_coworker ON tasks(coworker_id, created_at_ms);

CREATE TABLE runs (
    id                  UUID PRIMARY KEY,
    task_id             UUID NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    status              TEXT NOT NULL CHECK (status IN ('ready', 'running', 'waiting', 'finished')),
    lease_owner         TEXT,
    lease_expires_at_ms BIGINT,
    lease_epoch         BIGINT NOT NULL DEFAULT 0,
    wake_at_ms          BIGINT,
    created_at_ms       BIGINT NOT NULL,
    updated_at_ms       BIGINT NOT NULL
);
CREATE INDEX runs_claimable ON runs(status, wake_at_ms);
CREATE INDEX runs_task ON runs(task_id);

CREATE TABLE run_events (
    run_id          UUID NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    payload         JSONB NOT NULL,
    at_ms           BIGINT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE approvals (
    id                  UUID PRIMARY KEY,
    run_id              UUID NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    task_id             UUID NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    kind                TEXT NOT NULL,
    title               TEXT NOT NULL,
    preview             JSONB NOT NULL DEFAULT '{}',
    status              TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    decided_by_user_id  UUID REFERENCES users(id),
    decision            TEXT,
    decision_note       TEXT,
    expires_at_ms       BIGINT NOT NULL,
    escalated_at_ms     BIGINT,
    created_at_ms       BIGINT NOT NULL,
    decided_at_ms       BIGINT
);
CREATE INDEX approvals_pending ON approvals(status, expires_at_ms);

CREATE TABLE schedules (
    id                  UUID PRIMARY KEY,
    coworker_id         UUID NOT NULL REFERENCES coworkers(id) ON DELETE CASCADE,
    owner_user_id       UUID REFERENCES users(id),
    name                TEXT NOT NULL,
    cron                TEXT NOT NULL,
    timezone            TEXT NOT NULL,
    template            JSONB NOT NULL,
    catch_up            TEXT NOT NULL DEFAULT 'latest' CHECK (catch_up IN ('latest', 'all', 'none')),
    enabled             BOOLEAN NOT NULL DEFAULT TRUE,
    next_fire_at_ms     BIGINT,
    last_fired_at_ms    BIGINT,
    created_at_ms       BIGINT NOT NULL,
    updated_at_ms       BIGINT NOT NULL
);
CREATE INDEX schedules_due ON schedules(enabled, next_fire_at_ms);

CREATE TABLE facts (
    id                  UUID PRIMARY KEY,
    scope               TEXT NOT NULL CHECK (scope IN ('org', 'project', 'coworker', 'user')),
    scope_id            UUID,
    statement           TEXT NOT NULL,
    source              TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('proposed', 'approved', 'archived')),
    embedding           BYTEA,
    use_count           BIGINT NOT NULL DEFAULT 0,
    last_used_at_ms     BIGINT,
    created_at_ms       BIGINT NOT NULL,
    updated_at_ms       BIGINT NOT NULL
);
CREATE INDEX facts_scope ON facts(scope, scope_id, status);

CREATE TABLE episodes (
    id                  UUID PRIMARY KEY,
    task_id             UUID NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    coworker_id         UUID NOT NULL REFERENCES coworkers(id),
    project_id          UUID REFERENCES projects(id),
    summary             TEXT NOT NULL,
    outcome             TEXT NOT NULL,
    details             JSONB NOT NULL DEFAULT '{}',
    embedding           BYTEA,
    use_count           BIGINT NOT NULL DEFAULT 0,
    archived_at_ms      BIGINT,
    created_at_ms       BIGINT NOT NULL
);
CREATE INDEX episodes_coworker ON episodes(coworker_id, created_at_ms);

CREATE TABLE files (
    id                  UUID PRIMARY KEY,
    path                TEXT NOT NULL,
    version             BIGINT NOT NULL,
    blob_sha256         TEXT NOT NULL,
    size_bytes          BIGINT NOT NULL,
    media_type          TEXT NOT NULL,
    project_id          UUID REFERENCES projects(id),
    task_id             UUID REFERENCES tasks(id),
    created_by          TEXT NOT NULL,
    created_at_ms       BIGINT NOT NULL,
    UNIQUE (path, version)
);

CREATE TABLE connections (
    id                  UUID PRIMARY KEY,
    name                TEXT NOT NULL,
    kind                TEXT NOT NULL,
    scope               TEXT NOT NULL CHECK (scope IN ('org', 'user')),
    owner_user_id       UUID REFERENCES users(id) ON DELETE CASCADE,
    settings            JSONB NOT NULL DEFAULT '{}',
    secret_ref          TEXT,
    created_at_ms       BIGINT NOT NULL,
    updated_at_ms       BIGINT NOT NULL
);
CREATE UNIQUE INDEX connections_name ON connections(name, scope, owner_user_id) NULLS NOT DISTINCT;

CREATE TABLE audit_log (
    seq                 BIGINT PRIMARY KEY NOT NULL,
    id                  UUID NOT NULL UNIQUE,
    at_ms               BIGINT NOT NULL,
    actor               TEXT NOT NULL,
    action              TEXT NOT NULL,
    subject             TEXT NOT NULL,
    details             JSONB NOT NULL DEFAULT '{}',
    prev_hash           TEXT NOT NULL,
    hash                TEXT NOT NULL
);
