-- Operations (issue 18): failed sign-ins counted in the database, so every node of a cluster
-- enforces one allowance per client address and per account instead of one each. Keys are
-- stored as SHA-256 hashes (no addresses or emails kept for this), one fixed window per key.
CREATE TABLE signin_failures (
    key_hash TEXT PRIMARY KEY,
    window_start_ms BIGINT NOT NULL,
    failures BIGINT NOT NULL
);
CREATE INDEX signin_failures_by_window ON signin_failures (window_start_ms);
