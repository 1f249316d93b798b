-- Memory (issue 11): facts and episodes in one table of items, a full-text index over them
-- (FTS5, kept in sync by triggers), and each item's history (created, decided, used, archived).
-- Vectors are stored as little-endian f32 BLOBs; the node scans a quantised copy in memory.

CREATE TABLE memory_items (
    id               BLOB PRIMARY KEY NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('fact', 'episode')),
    scope            TEXT NOT NULL,
    text             TEXT NOT NULL,
    search_text      TEXT NOT NULL,
    text_sha256      TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('proposed', 'approved', 'archived', 'rejected')),
    source           TEXT NOT NULL,
    source_task_id   BLOB,
    created_by_user_id BLOB,
    details          TEXT NOT NULL DEFAULT '{}',
    occurred_at_ms   BIGINT,
    created_at_ms    BIGINT NOT NULL,
    updated_at_ms    BIGINT NOT NULL,
    last_used_at_ms  BIGINT,
    use_count        BIGINT NOT NULL DEFAULT 0,
    embedder         TEXT,
    embedding        BLOB
);
CREATE UNIQUE INDEX memory_items_scope_text ON memory_items(scope, text_sha256);
CREATE INDEX memory_items_updated ON memory_items(updated_at_ms);
CREATE INDEX memory_items_status ON memory_items(status, kind, created_at_ms);
CREATE INDEX memory_items_task ON memory_items(source_task_id);

CREATE VIRTUAL TABLE memory_fts USING fts5(search_text, content='memory_items', content_rowid='rowid', tokenize='porter unicode61');
CREATE TRIGGER memory_items_ai AFTER INSERT ON memory_items BEGIN
    INSERT INTO memory_fts(rowid, search_text) VALUES (new.rowid, new.search_text);
END;
CREATE TRIGGER memory_items_ad AFTER DELETE ON memory_items BEGIN
    INSERT INTO memory_fts(memory_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
END;
CREATE TRIGGER memory_items_au AFTER UPDATE OF search_text ON memory_items BEGIN
    INSERT INTO memory_fts(memory_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
    INSERT INTO memory_fts(rowid, search_text) VALUES (new.rowid, new.search_text);
END;

CREATE TABLE memory_events (
    id            BLOB PRIMARY KEY NOT NULL,
    item_id       BLOB NOT NULL REFERENCES memory_items(id) ON DELETE CASCADE,
    action        TEXT NOT NULL,
    actor         TEXT NOT NULL,
    task_id       BLOB,
    detail        TEXT NOT NULL DEFAULT '{}',
    at_ms         BIGINT NOT NULL
);
CREATE INDEX memory_events_item ON memory_events(item_id, at_ms);
