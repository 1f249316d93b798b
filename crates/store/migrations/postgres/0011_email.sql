-- Email (issue 16). Inbound mail is recorded before it is acted on, keyed by the mailbox's
-- UID validity and UID *and* by Message-ID, so a restart, a second node watching the same
-- mailbox or a copy of the message under a new UID all hit a key: one message, one action.

-- How far each [[email]] mailbox has been read.
CREATE TABLE email_mailboxes (
    mailbox             TEXT PRIMARY KEY NOT NULL,
    uid_validity        BIGINT NOT NULL,
    last_uid            BIGINT NOT NULL,
    updated_at_ms       BIGINT NOT NULL
);

CREATE TABLE email_messages (
    mailbox             TEXT NOT NULL,
    uid_validity        BIGINT NOT NULL,
    uid                 BIGINT NOT NULL,
    message_id          TEXT NOT NULL,
    from_addr           TEXT NOT NULL,
    subject             TEXT NOT NULL,
    size_bytes          BIGINT NOT NULL,
    -- The message as fetched (NULL when refused before fetching, e.g. over the size limit).
    raw                 BYTEA,
    state               TEXT NOT NULL CHECK (state IN ('pending', 'done', 'refused')),
    -- What was done, for people: "task", "message", "trigger:<name>", "ignored: …", the refusal.
    outcome             TEXT,
    task_id             UUID,
    claimed_until_ms    BIGINT,
    received_at_ms      BIGINT NOT NULL,
    processed_at_ms     BIGINT,
    PRIMARY KEY (mailbox, uid_validity, uid),
    UNIQUE (mailbox, message_id)
);
CREATE INDEX email_messages_pending ON email_messages(state, received_at_ms);
CREATE INDEX email_messages_task ON email_messages(task_id);

-- The Message-IDs of each conversation (mail that started or joined a task, mail sent in it),
-- so a reply's In-Reply-To / References find the run.
CREATE TABLE email_threads (
    message_id          TEXT PRIMARY KEY NOT NULL,
    task_id             UUID NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    mailbox             TEXT NOT NULL,
    created_at_ms       BIGINT NOT NULL
);
CREATE INDEX email_threads_task ON email_threads(task_id);

-- Every mail handed to SMTP, by what it is (call:<run>:<call>, delivery:<task>). The intent,
-- with the Message-ID it will carry, is written before the SMTP transaction; a send whose
-- outcome was never recorded is not repeated silently.
CREATE TABLE email_outbox (
    send_key            TEXT PRIMARY KEY NOT NULL,
    mailbox             TEXT NOT NULL,
    task_id             UUID,
    message_id          TEXT NOT NULL UNIQUE,
    recipients          TEXT NOT NULL,
    subject             TEXT NOT NULL,
    state               TEXT NOT NULL CHECK (state IN ('intent', 'sent', 'failed')),
    error               TEXT,
    created_at_ms       BIGINT NOT NULL,
    updated_at_ms       BIGINT NOT NULL
);
