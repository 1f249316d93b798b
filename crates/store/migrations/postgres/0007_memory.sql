-- Memory (issue 11): facts and episodes in one table of items, a full-text index over them
-- (a generated tsvector with GIN), and each item's history (created, decided, used, archived).
-- Vectors are stored as little-endian f32 bytes; the node scans a quantised copy in memory.

CREATE TABLE memory_items (
    id               UUID PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('fact', 'episode')),
    scope            TEXT NOT NULL,
    text             TEXT NOT NULL,
    search_text      TEXT NOT NULL,
    text_sha256      TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('proposed', 'approved', 'archived', 'rejected')),
    source           TEXT NOT NULL,
    source_task_id   UUID,
    created_by_user_id UUID,
    details          JSONB NOT NULL DEFAULT '{}',
    occurred_at_ms   BIGINT,
    created_at_ms    BIGINT NOT NULL,
    updated_at_ms    BIGINT NOT NULL,
    last_used_at_ms  BIGINT,
    use_count        BIGINT NOT NULL DEFAULT 0,
    embedder         TEXT,
    embedding        BYTEA,
    tsv              tsvector GENERATED ALWAYS AS (to_tsvector('english', search_text)) STORED
);
CREATE UNIQUE INDEX memory_items_scope_text ON memory_items(scope, text_sha256);
CREATE INDEX memory_items_updated ON memory_items(updated_at_ms);
CREATE INDEX memory_items_status ON memory_items(status, kind, created_at_ms);
CREATE INDEX memory_items_task ON memory_items(source_task_id);
CREATE INDEX memory_items_tsv ON memory_items USING GIN (tsv);

CREATE TABLE memory_events (
    id            UUID PRIMARY KEY,
    item_id       UUID NOT NULL REFERENCES memory_items(id) ON DELETE CASCADE,
    action        TEXT NOT NULL,
    actor         TEXT NOT NULL,
    task_id       UUID,
    detail        JSONB NOT NULL DEFAULT '{}',
    at_ms         BIGINT NOT NULL
);
CREATE INDEX memory_events_item ON memory_events(item_id, at_ms);
