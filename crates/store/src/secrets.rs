//! Rows of the `secrets` table: names, times and opaque encrypted bytes. Encryption, keys and
//! name rules live in `coworker_tools::secrets`; this module only moves bytes and never sees
//! a plaintext value.

use serde::Serialize;

use crate::{Store, StoreError, now_ms, on_pool};

const SECRET_META_COLUMNS: &str = "name, created_by, created_at_ms, updated_at_ms, last_used_at_ms";

/// A secret's metadata: everything but the encrypted value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SecretMeta {
    /// The secret's name.
    pub name: String,
    /// Who first stored it.
    pub created_by: String,
    /// When it was first stored (Unix ms).
    pub created_at_ms: i64,
    /// When its value last changed (Unix ms).
    pub updated_at_ms: i64,
    /// When it was last decrypted for use (Unix ms), if ever.
    pub last_used_at_ms: Option<i64>,
}

/// A secret as stored: the encrypted value and the nonce it was sealed with.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SealedSecret {
    /// The secret's name.
    pub name: String,
    /// The AEAD nonce used for this value.
    pub nonce: Vec<u8>,
    /// The encrypted value, authentication tag included.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Ciphertext is not secret, but it is noise in logs.
        f.debug_struct("SealedSecret")
            .field("name", &self.name)
            .field("ciphertext_bytes", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// What [`Store::secret_put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretWrite {
    /// The name was new.
    Created,
    /// The name existed; its value was replaced.
    Updated,
}

/// Times a put retries when the row appears or vanishes between its insert and its update
/// (a concurrent put or delete of the same name).
const SECRET_PUT_ATTEMPTS: u32 = 3;

impl Store {
    /// Stores a sealed value under `sealed.name`, creating the row or replacing the value.
    pub async fn secret_put(&self, sealed: &SealedSecret, actor: &str) -> Result<SecretWrite, StoreError> {
        for _ in 0..SECRET_PUT_ATTEMPTS {
            let now = now_ms();
            let inserted = on_pool!(self, pool => sqlx::query(
                "INSERT INTO secrets (name, nonce, ciphertext, created_by, created_at_ms, updated_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (name) DO NOTHING",
            )
            .bind(&sealed.name)
            .bind(&sealed.nonce)
            .bind(&sealed.ciphertext)
            .bind(actor)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
            if inserted == 1 {
                return Ok(SecretWrite::Created);
            }
            let updated = on_pool!(self, pool => sqlx::query(
                "UPDATE secrets SET nonce = $2, ciphertext = $3, updated_at_ms = $4 WHERE name = $1",
            )
            .bind(&sealed.name)
            .bind(&sealed.nonce)
            .bind(&sealed.ciphertext)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
            if updated == 1 {
                return Ok(SecretWrite::Updated);
            }
        }
        // Only reachable when other writers delete and re-create the name in every gap.
        Err(StoreError::Conflict {
            what: "secret",
            key: format!("{} (being deleted and re-created concurrently; try again)", sealed.name),
        })
    }

    /// The sealed value stored under `name`, if any.
    pub async fn secret_get(&self, name: &str) -> Result<Option<SealedSecret>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as("SELECT name, nonce, ciphertext FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?);
        Ok(row)
    }

    /// Records that `name` was decrypted for use at `at_ms`. Returns whether it exists.
    pub async fn secret_touch(&self, name: &str, at_ms: i64) -> Result<bool, StoreError> {
        let affected = on_pool!(self, pool => sqlx::query("UPDATE secrets SET last_used_at_ms = $2 WHERE name = $1")
            .bind(name)
            .bind(at_ms)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(affected == 1)
    }

    /// Every secret's metadata, by name. Never the values.
    pub async fn secret_list(&self) -> Result<Vec<SecretMeta>, StoreError> {
        let sql = format!("SELECT {SECRET_META_COLUMNS} FROM secrets ORDER BY name");
        let rows = on_pool!(self, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).fetch_all(pool).await?);
        Ok(rows)
    }

    /// One secret's metadata, if it exists.
    pub async fn secret_meta(&self, name: &str) -> Result<Option<SecretMeta>, StoreError> {
        let sql = format!("SELECT {SECRET_META_COLUMNS} FROM secrets WHERE name = $1");
        let row = on_pool!(self, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(name).fetch_optional(pool).await?);
        Ok(row)
    }

    /// Deletes the secret `name`. Returns whether it existed.
    pub async fn secret_delete(&self, name: &str) -> Result<bool, StoreError> {
        let affected = on_pool!(self, pool => sqlx::query("DELETE FROM secrets WHERE name = $1")
            .bind(name)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(affected == 1)
    }
}
