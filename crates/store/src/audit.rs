//! The audit log: an append-only, hash-chained record of every consequential event (design
//! §10). This module appends, lists and verifies entries; it does not decide what is worth
//! auditing (callers do, with the names in [`actions`]).
//!
//! # The chain
//!
//! Entries are numbered by `seq` from 1 without gaps. Each carries `prev_hash`, the `hash`
//! of the entry before it ([`GENESIS_PREV_HASH`], 64 `0`s, for seq 1), and its own
//!
//! ```text
//! hash = lowercase_hex(sha256(prev_hash || canonical))
//! ```
//!
//! where `prev_hash` is its 64 ASCII hex digits and `canonical` is the UTF-8 text of the JSON
//! array `[seq, id, at_ms, actor, action, subject, details]` written by
//! [`canonical_entry_json`]:
//!
//! - `seq` and `at_ms` are JSON integers; `id` is the UUID as a lowercase hyphenated string;
//!   `actor`, `action` and `subject` are JSON strings;
//! - no whitespace anywhere; object keys are sorted by their UTF-8 bytes at every depth;
//! - strings are escaped as `serde_json` escapes them (`"` and `\` backslashed, control
//!   characters as `\n`, `\t`, … or `\u00XX`, everything else verbatim UTF-8), numbers are
//!   printed as `serde_json` prints them (integers plainly, floats in shortest round-trip
//!   form).
//!
//! `details` are hashed as the database hands them back (PostgreSQL's JSONB normalises
//! numbers and key order), so the hash computed at append time is the one `verify` recomputes
//! from the stored row on either backend, and an exported entry can be re-hashed by anyone.
//!
//! # What verification catches, and what it cannot
//!
//! An edited row no longer matches its hash; a removed row leaves a seq gap; a row whose hash
//! was recomputed after an edit breaks the next entry's `prev_hash`; rows swapped between
//! positions fail both because `seq` is hashed. The chain alone cannot notice the *newest*
//! entries being removed or rewritten with recomputed hashes: record the head
//! ([`AuditVerification::head`]) somewhere else to anchor it.
//!
//! # Concurrency
//!
//! Appends from any number of processes keep the chain gapless: on PostgreSQL each append
//! holds a transaction-scoped advisory lock ([`AUDIT_ADVISORY_LOCK_KEY`]) while it reads the
//! head and inserts the next entry; on SQLite the transaction starts with `BEGIN IMMEDIATE`,
//! which takes the database's write lock before the head is read.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::types::Json;

use crate::{Backend, Store, StoreError, now_ms, on_pool};

/// Names of audited actions (dotted, `noun.verb`), shared by every writer so the log can be
/// filtered by prefix (`approval.` is every approval event).
pub mod actions {
    /// A task was delegated to a coworker.
    pub const TASK_CREATED: &str = "task.created";
    /// A coworker delegated a subtask (issue 15).
    pub const TASK_DELEGATED: &str = "task.delegated";
    /// A running or blocked task was handed to another coworker (issue 15).
    pub const TASK_REASSIGNED: &str = "task.reassigned";
    /// A plan was approved or rejected.
    pub const PLAN_DECIDED: &str = "plan.decided";
    /// A gated action is waiting for a human.
    pub const APPROVAL_REQUESTED: &str = "approval.requested";
    /// A human decided an approval.
    pub const APPROVAL_DECIDED: &str = "approval.decided";
    /// An approval expired without a decision.
    pub const APPROVAL_EXPIRED: &str = "approval.expired";
    /// An approval was escalated to the coworker's manager.
    pub const APPROVAL_ESCALATED: &str = "approval.escalated";
    /// A gated (notify or approve tier) tool call was executed.
    pub const TOOL_EXECUTED: &str = "tool.executed";
    /// An approval policy was changed.
    pub const POLICY_CHANGED: &str = "policy.changed";
    /// Configuration was changed.
    pub const CONFIG_CHANGED: &str = "config.changed";
    /// A secret was stored under a new name.
    pub const SECRET_CREATED: &str = "secret.created";
    /// An existing secret was given a new value.
    pub const SECRET_UPDATED: &str = "secret.updated";
    /// A secret was decrypted for use.
    pub const SECRET_USED: &str = "secret.used";
    /// A secret was deleted.
    pub const SECRET_DELETED: &str = "secret.deleted";
    /// A user signed in.
    pub const USER_SIGNED_IN: &str = "user.signed_in";
    /// A user's role or disabled flag was changed.
    pub const USER_UPDATED: &str = "user.updated";
    /// An invitation link was created.
    pub const INVITATION_CREATED: &str = "invitation.created";
    /// An invitation link was withdrawn.
    pub const INVITATION_REVOKED: &str = "invitation.revoked";
    /// An API token was created.
    pub const TOKEN_CREATED: &str = "token.created";
    /// An API token was revoked.
    pub const TOKEN_REVOKED: &str = "token.revoked";
    /// A person (or an admin, for the org) connected an OAuth-protected MCP server (issue 17).
    pub const OAUTH_CONNECTED: &str = "oauth.connected";
    /// An OAuth connection's tokens were refreshed.
    pub const OAUTH_REFRESHED: &str = "oauth.refreshed";
    /// An OAuth connection was used for a tool call (who, which task, which tool).
    pub const OAUTH_USED: &str = "oauth.used";
    /// An OAuth connection was revoked by its owner or an admin, or refused by its server.
    pub const OAUTH_REVOKED: &str = "oauth.revoked";
}

/// `prev_hash` of the first entry: 64 zeros.
pub const GENESIS_PREV_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Key of the PostgreSQL advisory lock that serialises appends across nodes. Arbitrary but
/// fixed forever: every Coworker process must use the same one.
pub const AUDIT_ADVISORY_LOCK_KEY: i64 = 0x636f_776b_6175_6431; // "cowkaud1"

/// Most entries [`Store::audit_list`] returns in one page, whatever the filter asks.
pub const AUDIT_MAX_PAGE_ROWS: u32 = 1000;

/// Entries [`Store::audit_verify`] reads per query, so verifying a long log never holds it
/// all in memory.
pub const AUDIT_VERIFY_PAGE_ROWS: u32 = 1000;

const AUDIT_COLUMNS: &str = "seq, id, at_ms, actor, action, subject, CAST(details AS TEXT) AS details, prev_hash, hash";

/// An event to append. `seq`, id, time and hashes are assigned by [`Store::audit_append`].
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Who did it: `user:<id>`, `coworker:<handle>`, `cli`, `system`.
    pub actor: String,
    /// What happened: one of [`actions`].
    pub action: String,
    /// What it happened to (a task id, a secret name, a tool name).
    pub subject: String,
    /// Anything else worth keeping, as a JSON object (never secret values).
    pub details: serde_json::Value,
}

impl AuditEntry {
    /// An entry with empty details.
    pub fn new(actor: impl Into<String>, action: impl Into<String>, subject: impl Into<String>) -> Self {
        AuditEntry {
            actor: actor.into(),
            action: action.into(),
            subject: subject.into(),
            details: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// The same entry with these details.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// A stored audit entry.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    /// Position in the chain, from 1, gapless.
    pub seq: i64,
    /// Unique id (UUIDv7).
    pub id: uuid::Uuid,
    /// When it was appended (Unix ms).
    pub at_ms: i64,
    /// Who did it.
    pub actor: String,
    /// What happened.
    pub action: String,
    /// What it happened to.
    pub subject: String,
    /// Anything else recorded.
    pub details: serde_json::Value,
    /// `hash` of the previous entry ([`GENESIS_PREV_HASH`] for seq 1).
    pub prev_hash: String,
    /// This entry's hash (see the module doc for the exact input).
    pub hash: String,
}

/// Which entries [`Store::audit_list`] returns: all conditions must hold; results are in
/// `seq` order, so the last `seq` of a page is the `after_seq` of the next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only entries appended at or after this time (Unix ms).
    pub since_ms: Option<i64>,
    /// Only entries after this seq (the cursor).
    pub after_seq: Option<i64>,
    /// Only actions starting with this text (`approval.` for every approval event).
    pub action_prefix: Option<String>,
    /// Only this actor.
    pub actor: Option<String>,
    /// Only subjects starting with this text (`mcp:` for every MCP server, a task id for
    /// that task).
    pub subject_prefix: Option<String>,
    /// Only entries before this seq (the cursor when paging newest first).
    pub before_seq: Option<i64>,
    /// Newest first (`seq` descending): the last `seq` of a page is the `before_seq` of the
    /// next. Oldest first otherwise.
    pub newest_first: bool,
    /// Only entries appended before this time (Unix ms).
    pub until_ms: Option<i64>,
    /// Most entries to return; 0 or anything above [`AUDIT_MAX_PAGE_ROWS`] means that limit.
    pub limit: u32,
}

/// The outcome of [`Store::audit_verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditVerification {
    /// Entries checked and found intact (all of them when the chain is intact; those before
    /// the break otherwise).
    pub checked: u64,
    /// The newest entry, `(seq, hash)`, when the chain is intact and non-empty. Record it
    /// elsewhere to detect later removal or rewriting of the newest entries, which no chain
    /// can see.
    pub head: Option<(i64, String)>,
    /// The first entry that breaks the chain, if any.
    pub first_broken: Option<BrokenEntry>,
}

impl AuditVerification {
    /// Whether every entry checked out.
    pub fn is_intact(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// Where and how the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenEntry {
    /// Seq of the first entry that does not check out.
    pub seq: i64,
    /// Its action as stored (may itself be the edited field).
    pub action: String,
    /// What is wrong.
    pub reason: BrokenReason,
}

/// Why an entry breaks the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BrokenReason {
    /// Entries before this one are missing: `expected_seq` came next but this one is `seq`.
    Missing {
        /// The seq that should have come next.
        expected_seq: i64,
    },
    /// `prev_hash` is not the previous entry's hash: an earlier entry was edited and
    /// re-hashed, replaced, or the entries were reordered.
    PrevHashMismatch {
        /// The previous entry's hash.
        expected: String,
        /// This entry's `prev_hash`.
        found: String,
    },
    /// The stored fields do not hash to the stored `hash`: the row was edited.
    HashMismatch {
        /// The hash of the fields as stored.
        computed: String,
        /// The stored hash.
        stored: String,
    },
    /// `details` is not valid JSON: the row was edited outside Coworker.
    UnreadableDetails {
        /// The parser's complaint.
        error: String,
    },
}

impl std::fmt::Display for BrokenReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BrokenReason::Missing { expected_seq } => write!(
                f,
                "entries from seq {expected_seq} up to this one are missing (rows were deleted)"
            ),
            BrokenReason::PrevHashMismatch { expected, found } => write!(
                f,
                "its prev_hash {found} is not the hash of the entry before it ({expected}): \
                 an earlier entry was edited and re-hashed, replaced, or entries were reordered"
            ),
            BrokenReason::HashMismatch { computed, stored } => write!(
                f,
                "its fields hash to {computed} but the stored hash is {stored}: the row was edited"
            ),
            BrokenReason::UnreadableDetails { error } => {
                write!(f, "its details are not valid JSON ({error}): the row was edited")
            }
        }
    }
}

impl std::fmt::Display for BrokenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "entry seq {} ({}): {}", self.seq, self.action, self.reason)
    }
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    id: uuid::Uuid,
    at_ms: i64,
    actor: String,
    action: String,
    subject: String,
    details: String,
    prev_hash: String,
    hash: String,
}

impl AuditRow {
    fn into_record(self) -> Result<AuditRecord, StoreError> {
        let details = serde_json::from_str(&self.details).map_err(|e| {
            StoreError::Database(sqlx::Error::Decode(
                format!(
                    "audit entry seq {}: details are not valid JSON ({e}); the row was edited outside Coworker, \
                     run `coworker audit verify`",
                    self.seq
                )
                .into(),
            ))
        })?;
        Ok(AuditRecord {
            seq: self.seq,
            id: self.id,
            at_ms: self.at_ms,
            actor: self.actor,
            action: self.action,
            subject: self.subject,
            details,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// The canonical JSON text of an entry's hashed fields (see the module doc).
pub fn canonical_entry_json(
    seq: i64,
    id: uuid::Uuid,
    at_ms: i64,
    actor: &str,
    action: &str,
    subject: &str,
    details: &serde_json::Value,
) -> String {
    let mut out = String::with_capacity(256);
    out.push('[');
    out.push_str(&seq.to_string());
    out.push(',');
    push_json_string(&mut out, &id.hyphenated().to_string());
    out.push(',');
    out.push_str(&at_ms.to_string());
    for text in [actor, action, subject] {
        out.push(',');
        push_json_string(&mut out, text);
    }
    out.push(',');
    push_canonical_value(&mut out, details);
    out.push(']');
    out
}

/// `lowercase_hex(sha256(prev_hash || canonical_entry_json(..)))`.
pub fn audit_entry_hash(prev_hash: &str, canonical: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(canonical.as_bytes());
    hex::encode(hasher.finalize())
}

fn record_hash(record: &AuditRecord) -> String {
    let canonical = canonical_entry_json(
        record.seq,
        record.id,
        record.at_ms,
        &record.actor,
        &record.action,
        &record.subject,
        &record.details,
    );
    audit_entry_hash(&record.prev_hash, &canonical)
}

fn push_json_string(out: &mut String, text: &str) {
    // serde_json's string escaping is the canonical one; serialising a &str cannot fail.
    out.push_str(&serde_json::Value::from(text).to_string());
}

fn push_canonical_value(out: &mut String, value: &serde_json::Value) {
    match value {
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_canonical_value(out, item);
            }
            out.push(']');
        }
        serde_json::Value::Object(map) => {
            // Sorted explicitly: serde_json's map keeps insertion order when any crate in
            // the build enables its `preserve_order` feature.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(out, key);
                out.push(':');
                push_canonical_value(out, &map[key]);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

impl Store {
    /// Appends an entry at the end of the chain and returns it as stored. Safe under any
    /// number of concurrent appenders in any number of processes (see the module doc).
    pub async fn audit_append(&self, entry: AuditEntry) -> Result<AuditRecord, StoreError> {
        let id = uuid::Uuid::now_v7();
        let at_ms = now_ms();
        let details = Json(&entry.details);
        let record: AuditRecord = on_pool!(self, pool => {
            let mut tx = match &self.backend {
                Backend::Sqlite(_) => pool.begin_with("BEGIN IMMEDIATE").await?,
                Backend::Postgres(_) => {
                    let mut tx = pool.begin().await?;
                    sqlx::query("SELECT pg_advisory_xact_lock($1)")
                        .bind(AUDIT_ADVISORY_LOCK_KEY)
                        .execute(&mut *tx)
                        .await?;
                    tx
                }
            };
            let head: Option<(i64, String)> =
                sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await?;
            let (seq, prev_hash) = match head {
                Some((seq, hash)) => (seq + 1, hash),
                None => (1, GENESIS_PREV_HASH.to_owned()),
            };
            // Hash the details as the database will hand them back (JSONB normalises them).
            let stored_details: String = sqlx::query_scalar("SELECT CAST($1 AS TEXT)")
                .bind(details)
                .fetch_one(&mut *tx)
                .await?;
            let mut record = AuditRow {
                seq,
                id,
                at_ms,
                actor: entry.actor.clone(),
                action: entry.action.clone(),
                subject: entry.subject.clone(),
                details: stored_details,
                prev_hash,
                hash: String::new(),
            }
            .into_record()?;
            record.hash = record_hash(&record);
            sqlx::query(
                "INSERT INTO audit_log (seq, id, at_ms, actor, action, subject, details, prev_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(record.seq)
            .bind(record.id)
            .bind(record.at_ms)
            .bind(&record.actor)
            .bind(&record.action)
            .bind(&record.subject)
            .bind(details)
            .bind(&record.prev_hash)
            .bind(&record.hash)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            record
        });
        Ok(record)
    }

    /// Entries matching `filter`, oldest first (newest first with
    /// [`AuditFilter::newest_first`]), at most one page ([`AUDIT_MAX_PAGE_ROWS`]).
    pub async fn audit_list(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = if filter.limit == 0 {
            AUDIT_MAX_PAGE_ROWS
        } else {
            filter.limit.min(AUDIT_MAX_PAGE_ROWS)
        };
        let chars = |prefix: Option<&str>| prefix.map(|p| i32::try_from(p.chars().count()).unwrap_or(i32::MAX));
        let order = if filter.newest_first { "DESC" } else { "ASC" };
        // substr() rather than LIKE: no escaping of `_`/`%`, and case-sensitive on SQLite too.
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log \
             WHERE ($1 IS NULL OR seq > $1) AND ($2 IS NULL OR at_ms >= $2) \
             AND ($3 IS NULL OR substr(action, 1, $4) = $3) AND ($5 IS NULL OR actor = $5) \
             AND ($7 IS NULL OR substr(subject, 1, $8) = $7) AND ($9 IS NULL OR seq < $9) \
             AND ($10 IS NULL OR at_ms < $10) \
             ORDER BY seq {order} LIMIT $6"
        );
        let rows: Vec<AuditRow> = on_pool!(self, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(filter.after_seq)
            .bind(filter.since_ms)
            .bind(filter.action_prefix.as_deref())
            .bind(chars(filter.action_prefix.as_deref()))
            .bind(filter.actor.as_deref())
            .bind(i64::from(limit))
            .bind(filter.subject_prefix.as_deref())
            .bind(chars(filter.subject_prefix.as_deref()))
            .bind(filter.before_seq)
            .bind(filter.until_ms)
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(AuditRow::into_record).collect()
    }

    /// The newest entry's `(seq, hash)`, or `None` for an empty log.
    pub async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        let head = on_pool!(self, pool => sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(pool)
            .await?);
        Ok(head)
    }

    /// Walks the whole chain in pages of [`AUDIT_VERIFY_PAGE_ROWS`] and reports the first
    /// entry that does not check out (see the module doc for what is detected).
    pub async fn audit_verify(&self) -> Result<AuditVerification, StoreError> {
        let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");
        let mut checked: u64 = 0;
        let mut expected_seq: i64 = 1;
        let mut expected_prev = GENESIS_PREV_HASH.to_owned();
        let mut cursor: i64 = i64::MIN;
        let mut head = None;
        loop {
            let rows: Vec<AuditRow> = on_pool!(self, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(cursor)
                .bind(i64::from(AUDIT_VERIFY_PAGE_ROWS))
                .fetch_all(pool)
                .await?);
            let Some(last) = rows.last() else {
                break;
            };
            cursor = last.seq;
            for row in rows {
                let (seq, action) = (row.seq, row.action.clone());
                let broken = |reason| AuditVerification {
                    checked,
                    head: None,
                    first_broken: Some(BrokenEntry {
                        seq,
                        action: action.clone(),
                        reason,
                    }),
                };
                if seq != expected_seq {
                    return Ok(broken(BrokenReason::Missing { expected_seq }));
                }
                let record = match serde_json::from_str::<serde_json::Value>(&row.details) {
                    Ok(_) => row.into_record()?,
                    Err(e) => return Ok(broken(BrokenReason::UnreadableDetails { error: e.to_string() })),
                };
                let computed = record_hash(&record);
                if computed != record.hash {
                    return Ok(broken(BrokenReason::HashMismatch {
                        computed,
                        stored: record.hash,
                    }));
                }
                if record.prev_hash != expected_prev {
                    return Ok(broken(BrokenReason::PrevHashMismatch {
                        expected: expected_prev,
                        found: record.prev_hash,
                    }));
                }
                checked += 1;
                expected_seq = seq + 1;
                head = Some((seq, record.hash.clone()));
                expected_prev = record.hash;
            }
        }
        Ok(AuditVerification {
            checked,
            head,
            first_broken: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_sorts_keys_at_every_depth_and_has_no_whitespace() {
        let id = uuid::Uuid::parse_str("0192f0c4-6a3e-7c1d-9a53-1f0e2b3c4d5e").unwrap();
        let details = serde_json::json!({"b": 1, "a": {"z": [true, null, 1.5], "y": "q\"\n"}});
        assert_eq!(
            canonical_entry_json(7, id, 1_700_000_000_000, "cli", "secret.created", "tok", &details),
            r#"[7,"0192f0c4-6a3e-7c1d-9a53-1f0e2b3c4d5e",1700000000000,"cli","secret.created","tok",{"a":{"y":"q\"\n","z":[true,null,1.5]},"b":1}]"#
        );
    }

    #[test]
    fn hash_is_sha256_of_prev_hash_then_canonical_text() {
        // sha256("") is a well-known constant; an empty input pair must give it.
        assert_eq!(
            audit_entry_hash("", ""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let a = audit_entry_hash(GENESIS_PREV_HASH, "[1]");
        let b = audit_entry_hash(&format!("{GENESIS_PREV_HASH}[1]"), "");
        assert_eq!(a, b, "the hash input is the plain concatenation");
        assert_ne!(a, audit_entry_hash(GENESIS_PREV_HASH, "[2]"));
    }
}
