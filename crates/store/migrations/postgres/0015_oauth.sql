-- OAuth connections to remote MCP servers (issue 17): per person, or org-wide for roles an
-- admin picks. Token values never live here: each grant names the secret (the encrypted
-- secret store) that holds its access and refresh tokens.

-- A client registration at an authorization server, by dynamic client registration
-- (RFC 7591) or given by an admin; one per server, issuer and redirect URI. A confidential
-- client's secret is in the secret store (`client_secret_ref`).
CREATE TABLE oauth_clients (
    server              TEXT NOT NULL,
    issuer              TEXT NOT NULL,
    redirect_uri        TEXT NOT NULL,
    client_id           TEXT NOT NULL,
    client_secret_ref   TEXT,
    created_at_ms       BIGINT NOT NULL,
    PRIMARY KEY (server, issuer, redirect_uri)
);

-- An authorization in progress: only the SHA-256 of the `state` sent to the authorization
-- server is kept; the row is spent (deleted) by the callback, and expires in minutes.
CREATE TABLE oauth_flows (
    state_hash          BYTEA PRIMARY KEY,
    server              TEXT NOT NULL,
    user_id             UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- NULL: the person's own connection; a JSON array of roles: an org-wide one.
    org_roles           JSONB,
    code_verifier       TEXT NOT NULL,
    redirect_uri        TEXT NOT NULL,
    details             JSONB NOT NULL,
    created_at_ms       BIGINT NOT NULL,
    expires_at_ms       BIGINT NOT NULL
);

-- A connection: one per server and owner (a user, or the org).
CREATE TABLE oauth_grants (
    id                  UUID PRIMARY KEY,
    server              TEXT NOT NULL,
    owner_user_id       UUID REFERENCES users(id) ON DELETE CASCADE,
    -- The owner's id as text, or 'org': unique with the server (NULLs would not be).
    owner_key           TEXT NOT NULL,
    roles               JSONB NOT NULL,
    connected_by_user_id UUID REFERENCES users(id) ON DELETE SET NULL,
    details             JSONB NOT NULL,
    token_secret        TEXT NOT NULL,
    expires_at_ms       BIGINT,
    version             BIGINT NOT NULL,
    refresh_claimed_until_ms BIGINT,
    status              TEXT NOT NULL,
    created_at_ms       BIGINT NOT NULL,
    updated_at_ms       BIGINT NOT NULL
);
CREATE UNIQUE INDEX oauth_grants_owner ON oauth_grants(server, owner_key);
