-- Document templates (issue 14): a named shape for a recurring deliverable, held by the org,
-- a project or a coworker (scope `org`, `project:<slug>`, `coworker:<handle>`, as memory
-- scopes are written). `body` is minijinja over Markdown; `style_bytes` an optional DOCX or
-- PPTX whose styles (DOCX) or slide master, layouts and theme (PPTX) generated files reuse.
-- The style file is kept in the row (bounded by the API) so every node reads the same one.
CREATE TABLE document_templates (
    id               UUID PRIMARY KEY,
    scope            TEXT NOT NULL,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    body             TEXT,
    style_kind       TEXT CHECK (style_kind IN ('docx', 'pptx')),
    style_file_name  TEXT,
    style_bytes      BYTEA,
    style_sha256     TEXT,
    created_by       TEXT NOT NULL,
    created_at_ms    BIGINT NOT NULL,
    updated_at_ms    BIGINT NOT NULL,
    CHECK (body IS NOT NULL OR style_bytes IS NOT NULL),
    CHECK ((style_kind IS NULL) = (style_bytes IS NULL))
);
CREATE UNIQUE INDEX document_templates_scope_name ON document_templates(scope, name);

-- A schedule may name the template its tasks' deliverable is made with.
ALTER TABLE schedules ADD COLUMN template_name TEXT;
