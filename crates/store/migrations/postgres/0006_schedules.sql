-- Schedules and triggers (issue 12). The schedules table of 0001 was a placeholder that no
-- code used; it is replaced by the shape the scheduler needs.
DROP INDEX IF EXISTS schedules_due;
DROP TABLE schedules;

-- A standing job: a cron in a timezone (or a fixed interval) → a task template. A watch is
-- a schedule whose fire polls a read-tier tool and creates a task only when the result
-- changes (watch_* columns).
CREATE TABLE schedules (
    id                      UUID PRIMARY KEY,
    coworker_id             UUID NOT NULL REFERENCES coworkers(id) ON DELETE CASCADE,
    owner_user_id           UUID NOT NULL REFERENCES users(id),
    name                    TEXT NOT NULL DEFAULT '',
    cron                    TEXT,
    interval_secs           BIGINT,
    timezone                TEXT NOT NULL,
    brief                   TEXT NOT NULL,
    project_id              UUID REFERENCES projects(id),
    priority                TEXT NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    deliver_to              TEXT NOT NULL DEFAULT 'inbox',
    catch_up                TEXT NOT NULL DEFAULT 'latest' CHECK (catch_up IN ('latest', 'all', 'none')),
    catch_up_max            BIGINT NOT NULL DEFAULT 10,
    respect_working_hours   BOOLEAN NOT NULL DEFAULT TRUE,
    watch_tool              TEXT,
    watch_arguments         JSONB,
    watch_hash              TEXT,
    watch_result            TEXT,
    watch_generation        BIGINT NOT NULL DEFAULT 0,
    enabled                 BOOLEAN NOT NULL DEFAULT TRUE,
    next_fire_at_ms         BIGINT,
    last_fire_at_ms         BIGINT,
    last_task_id            UUID,
    last_error              TEXT,
    created_at_ms           BIGINT NOT NULL,
    updated_at_ms           BIGINT NOT NULL,
    CHECK ((cron IS NULL) <> (interval_secs IS NULL))
);
CREATE INDEX schedules_due ON schedules(enabled, next_fire_at_ms);
CREATE INDEX schedules_coworker ON schedules(coworker_id);

-- One row per fire: the (schedule, kind, fire time) key is what makes a fire happen once;
-- the task it made carries the idempotency key schedule:{id}:{fire_time_ms}.
CREATE TABLE schedule_fires (
    schedule_id     UUID NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('scheduled', 'manual', 'watch')),
    fire_at_ms      BIGINT NOT NULL,
    task_id         UUID REFERENCES tasks(id) ON DELETE SET NULL,
    fired_at_ms     BIGINT NOT NULL,
    PRIMARY KEY (schedule_id, kind, fire_at_ms)
);

-- An event source → a task from a brief template. The signing secret lives in the
-- encrypted secret store under the name trigger.{id}.
CREATE TABLE triggers (
    id                  UUID PRIMARY KEY,
    coworker_id         UUID NOT NULL REFERENCES coworkers(id) ON DELETE CASCADE,
    owner_user_id       UUID NOT NULL REFERENCES users(id),
    name                TEXT NOT NULL DEFAULT '',
    kind                TEXT NOT NULL CHECK (kind IN ('webhook')),
    scheme              TEXT NOT NULL CHECK (scheme IN ('coworker', 'github', 'stripe')),
    brief_template      TEXT NOT NULL,
    filter              TEXT,
    project_id          UUID REFERENCES projects(id),
    priority            TEXT NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    deliver_to          TEXT NOT NULL DEFAULT 'inbox',
    enabled             BOOLEAN NOT NULL DEFAULT TRUE,
    last_fired_at_ms    BIGINT,
    last_task_id        UUID,
    created_at_ms       BIGINT NOT NULL,
    updated_at_ms       BIGINT NOT NULL
);

-- Webhook deliveries seen, by the sender's delivery id: a replay is acknowledged, not run.
CREATE TABLE webhook_deliveries (
    trigger_id      UUID NOT NULL REFERENCES triggers(id) ON DELETE CASCADE,
    delivery_id     TEXT NOT NULL,
    task_id         UUID REFERENCES tasks(id) ON DELETE SET NULL,
    received_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (trigger_id, delivery_id)
);
