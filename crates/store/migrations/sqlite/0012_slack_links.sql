-- Slack, continued (issue 13).
-- What an approval's Slack message shows now (`pending`, `escalated`, `approved`, `rejected`,
-- `expired`), so an escalation or an expiry is edited into it in place, once.
ALTER TABLE slack_posts ADD COLUMN shown TEXT;

-- One-time links a Slack user opens, signed in to the web app, to link their Slack account
-- to their Coworker account. Only the SHA-256 of the secret in the link is kept.
CREATE TABLE slack_link_tokens (
    token_hash          BLOB PRIMARY KEY NOT NULL,
    team_id             TEXT NOT NULL,
    slack_user_id       TEXT NOT NULL,
    created_at_ms       BIGINT NOT NULL,
    expires_at_ms       BIGINT NOT NULL,
    used_at_ms          BIGINT,
    used_by_user_id     BLOB REFERENCES users(id) ON DELETE SET NULL
);
CREATE INDEX slack_link_tokens_user ON slack_link_tokens(slack_user_id, created_at_ms);
