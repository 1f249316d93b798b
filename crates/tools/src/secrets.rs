//! Secrets at rest (design §10): connector tokens and API keys, encrypted with
//! XChaCha20-Poly1305 under a master key, and the master key itself. The store only moves
//! sealed bytes; plaintext exists here, briefly, in zeroizing buffers, and leaves only as a
//! [`SecretString`] (never `Debug`-printed, never logged).
//!
//! # Format
//!
//! Each write seals the UTF-8 value with a fresh random 24-byte nonce and the associated data
//! `coworker.secret.v1:` followed by the secret's name, so a ciphertext copied to another
//! name, or edited, does not decrypt. Rows hold `(nonce, ciphertext || 16-byte tag)`.
//!
//! # The master key
//!
//! 32 bytes, from `COWORKER_MASTER_KEY` (64 hex digits) when set, else from the key file
//! (`secrets.key_file`, default `master.key` in the data dir), which is created on first use
//! with mode 0600 and refused if other users can read or write it. Losing the key loses
//! every stored secret: back the file up (or keep the variable) with the database.
//!
//! Every write, delete and use is recorded in the audit log.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use coworker_core::config::Config;
use coworker_store::{AuditEntry, SealedSecret, SecretWrite, Store, StoreError, actions, now_ms};
use futures::future::BoxFuture;
use secrecy::SecretBox;
use zeroize::Zeroizing;

pub use coworker_store::SecretMeta as SecretInfo;
pub use secrecy::{ExposeSecret, SecretString};

/// Environment variable holding the master key as 64 hex digits; wins over the key file.
pub const MASTER_KEY_ENV: &str = "COWORKER_MASTER_KEY";

/// Default key file name inside the data dir (when `secrets.key_file` is empty).
pub const MASTER_KEY_FILE_NAME: &str = "master.key";

/// Longest secret name, in bytes.
pub const MAX_SECRET_NAME_LEN: usize = 128;

/// Largest secret value, in bytes of UTF-8.
pub const MAX_SECRET_VALUE_BYTES: usize = 64 * 1024;

/// Actor recorded when a secret is used without a more specific one (see [`Secrets::get`]).
pub const SYSTEM_ACTOR: &str = "system";

/// Master key length in bytes (XChaCha20-Poly1305 keys are 256-bit).
const MASTER_KEY_BYTES: usize = 32;

/// Nonce length in bytes (XChaCha's extended nonce: random nonces never realistically collide).
const NONCE_BYTES: usize = 24;

/// Longest key file we read; a valid one is 64 hex digits and a newline.
const MAX_KEY_FILE_BYTES: u64 = 256;

/// Prefix of the associated data; versioned so the format can change without ambiguity.
const AAD_PREFIX: &[u8] = b"coworker.secret.v1:";

/// What went wrong with a secret or the master key.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The name breaks the naming rule.
    #[error(
        "secret name {name:?} is not allowed: {reason}; use 1 to {MAX_SECRET_NAME_LEN} ASCII letters, digits, '_', '.' or '-'"
    )]
    InvalidName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An empty value was given.
    #[error("secret {name}: the value is empty; nothing was stored")]
    EmptyValue {
        /// The secret's name.
        name: String,
    },
    /// The value is over [`MAX_SECRET_VALUE_BYTES`].
    #[error("secret {name}: the value is {bytes} bytes, over the limit of {limit} bytes; nothing was stored")]
    ValueTooLarge {
        /// The secret's name.
        name: String,
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// `COWORKER_MASTER_KEY` is set but unusable.
    #[error(
        "{MASTER_KEY_ENV} is set but {reason}\n  fix: set it to 64 hex digits (32 bytes, e.g. from `openssl rand -hex 32`), \
         or unset it to use the key file"
    )]
    InvalidEnvKey {
        /// What is wrong (never the value).
        reason: String,
    },
    /// The key file can be read or written by other users.
    #[error(
        "master key file {path} is accessible to other users (mode {mode:03o}); refusing to use it\n  fix: chmod 600 {path} \
         (and make sure it is owned by the user running Coworker)"
    )]
    InsecureKeyFile {
        /// The key file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file does not hold a key.
    #[error(
        "master key file {path} {reason}; it must hold 64 hex digits\n  fix: restore it from a backup \
         (secrets stored under the original key cannot be decrypted without it), or set {MASTER_KEY_ENV}"
    )]
    InvalidKeyFile {
        /// The key file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The key file could not be read or created.
    #[error(
        "cannot {action} master key file {path}: {source}\n  fix: make its directory writable by this user, choose another \
         path with secrets.key_file, or set {MASTER_KEY_ENV}"
    )]
    KeyFileIo {
        /// What we were doing ("read", "create").
        action: &'static str,
        /// The key file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Decryption failed: wrong key, or the row was altered or moved.
    #[error(
        "secret {name} cannot be decrypted: the master key differs from the one it was stored with ({key_source}), \
         or the stored row was altered or copied from another secret\n  fix: use the master key it was stored with, \
         or store the secret again with `coworker secrets set {name}`"
    )]
    Undecryptable {
        /// The secret's name.
        name: String,
        /// Where the key in use came from.
        key_source: String,
    },
    /// The operating system's random source failed.
    #[error("cannot get random bytes from the operating system: {0}")]
    Random(String),
    /// Encryption itself failed (only possible for absurd sizes).
    #[error("secret {name}: encryption failed")]
    Encrypt {
        /// The secret's name.
        name: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a secret name against `[A-Za-z0-9_.-]{1,128}`.
pub fn validate_name(name: &str) -> Result<(), SecretsError> {
    let invalid = |reason| SecretsError::InvalidName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > MAX_SECRET_NAME_LEN {
        return Err(invalid("it is too long"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(invalid("it contains other characters"));
    }
    Ok(())
}

/// Where the master key came from, for messages (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `COWORKER_MASTER_KEY`.
    Env,
    /// A key file.
    File(PathBuf),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Env => write!(f, "{MASTER_KEY_ENV}"),
            KeySource::File(path) => write!(f, "key file {}", path.display()),
        }
    }
}

/// The 32-byte master key, zeroized on drop.
pub struct MasterKey {
    key: SecretBox<[u8; MASTER_KEY_BYTES]>,
    source: KeySource,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// The key `config` selects: `env_value` (the value of [`MASTER_KEY_ENV`], if set and
    /// non-empty) wins; else the key file, created on first use.
    pub fn resolve(config: &Config, env_value: Option<&SecretString>) -> Result<MasterKey, SecretsError> {
        match env_value.filter(|v| !v.expose_secret().trim().is_empty()) {
            Some(value) => MasterKey::from_hex(value.expose_secret().trim(), KeySource::Env)
                .map_err(|reason| SecretsError::InvalidEnvKey { reason }),
            None => MasterKey::load_or_create_file(&key_file_path(config)),
        }
    }

    /// Where this key came from.
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    fn from_hex(text: &str, source: KeySource) -> Result<MasterKey, String> {
        if text.len() != 2 * MASTER_KEY_BYTES {
            return Err(format!(
                "is {} characters long, not {}",
                text.len(),
                2 * MASTER_KEY_BYTES
            ));
        }
        let mut decoded = Ok(());
        let key = SecretBox::<[u8; MASTER_KEY_BYTES]>::init_with_mut(|key| {
            decoded = hex::decode_to_slice(text, key);
        });
        decoded.map_err(|_| "contains characters that are not hex digits".to_owned())?;
        Ok(MasterKey { key, source })
    }

    /// Reads the key file at `path`, creating it (mode 0600, parent dir 0700) with a fresh
    /// random key if it does not exist.
    pub fn load_or_create_file(path: &Path) -> Result<MasterKey, SecretsError> {
        match MasterKey::read_file(path) {
            Err(SecretsError::KeyFileIo { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                MasterKey::create_file(path)
            }
            other => other,
        }
    }

    fn read_file(path: &Path) -> Result<MasterKey, SecretsError> {
        let io = |source| SecretsError::KeyFileIo {
            action: "read",
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let metadata = file.metadata().map_err(io)?;
        if !metadata.is_file() {
            return Err(SecretsError::InvalidKeyFile {
                path: path.display().to_string(),
                reason: "is not a regular file".into(),
            });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(SecretsError::InsecureKeyFile {
                    path: path.display().to_string(),
                    mode,
                });
            }
        }
        let mut text = Zeroizing::new(String::with_capacity(MAX_KEY_FILE_BYTES as usize + 1));
        file.take(MAX_KEY_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        let invalid = |reason: String| SecretsError::InvalidKeyFile {
            path: path.display().to_string(),
            reason,
        };
        if text.trim().is_empty() {
            return Err(invalid("is empty".into()));
        }
        MasterKey::from_hex(text.trim(), KeySource::File(path.to_owned())).map_err(invalid)
    }

    fn create_file(path: &Path) -> Result<MasterKey, SecretsError> {
        let io = |source| SecretsError::KeyFileIo {
            action: "create",
            path: path.display().to_string(),
            source,
        };
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut dir = std::fs::DirBuilder::new();
        dir.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            dir.mode(0o700);
        }
        dir.create(&parent).map_err(io)?;

        let mut generated = Ok(());
        let key = SecretBox::<[u8; MASTER_KEY_BYTES]>::init_with_mut(|key| generated = getrandom::fill(key));
        generated.map_err(|e| SecretsError::Random(e.to_string()))?;
        let mut text = Zeroizing::new(hex::encode(key.expose_secret()));
        text.push('\n');

        // Written in full under a private temporary name, then linked into place: a process
        // racing us to create the key either wins the link or reads a complete file, never a
        // half-written one. The mode is set at creation (O_EXCL), never widened afterwards.
        let temp = parent.join(format!(".{MASTER_KEY_FILE_NAME}.{}.tmp", random_suffix()?));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let written = options.open(&temp).and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        });
        let linked = written.and_then(|()| std::fs::hard_link(&temp, path));
        let _ = std::fs::remove_file(&temp);
        match linked {
            Ok(()) => {
                if let Ok(dir) = std::fs::File::open(&parent) {
                    let _ = dir.sync_all();
                }
                tracing::info!(
                    path = %path.display(),
                    "created a new master key file; back it up with the database: stored secrets cannot be decrypted without it"
                );
                Ok(MasterKey {
                    key,
                    source: KeySource::File(path.to_owned()),
                })
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => MasterKey::read_file(path),
            Err(e) => Err(io(e)),
        }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        let key: &Key = self.key.expose_secret().into();
        XChaCha20Poly1305::new(key)
    }
}

fn random_suffix() -> Result<String, SecretsError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| SecretsError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// The key file `config` names: `secrets.key_file`, or [`MASTER_KEY_FILE_NAME`] in the data
/// dir when that is empty.
pub fn key_file_path(config: &Config) -> PathBuf {
    if config.secrets.key_file.trim().is_empty() {
        Path::new(&config.storage.data_dir).join(MASTER_KEY_FILE_NAME)
    } else {
        PathBuf::from(config.secrets.key_file.trim())
    }
}

fn associated_data(name: &str) -> Vec<u8> {
    [AAD_PREFIX, name.as_bytes()].concat()
}

/// Seals and opens secrets in the store, auditing every change and use.
pub struct Secrets {
    store: Store,
    key: MasterKey,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Secrets {
    /// Opens the secret store with the master key `config` selects (see [`MasterKey::resolve`]),
    /// reading [`MASTER_KEY_ENV`] from the process environment.
    pub fn open(store: Store, config: &Config) -> Result<Secrets, SecretsError> {
        let env_value = std::env::var(MASTER_KEY_ENV).ok().map(SecretString::from);
        let key = MasterKey::resolve(config, env_value.as_ref())?;
        Ok(Secrets::with_key(store, key))
    }

    /// A secret store using `key`.
    pub fn with_key(store: Store, key: MasterKey) -> Secrets {
        Secrets { store, key }
    }

    /// Where the master key in use came from.
    pub fn key_source(&self) -> &KeySource {
        self.key.source()
    }

    /// Encrypts and stores `value` under `name` (replacing any previous value), and audits it
    /// as `secret.created` or `secret.updated` by `actor`.
    pub async fn set(&self, name: &str, value: SecretString, actor: &str) -> Result<SecretWrite, SecretsError> {
        validate_name(name)?;
        let plaintext = value.expose_secret().as_bytes();
        if plaintext.is_empty() {
            return Err(SecretsError::EmptyValue { name: name.to_owned() });
        }
        if plaintext.len() > MAX_SECRET_VALUE_BYTES {
            return Err(SecretsError::ValueTooLarge {
                name: name.to_owned(),
                bytes: plaintext.len(),
                limit: MAX_SECRET_VALUE_BYTES,
            });
        }
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| SecretsError::Random(e.to_string()))?;
        let aad = associated_data(name);
        let ciphertext = self
            .key
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| SecretsError::Encrypt { name: name.to_owned() })?;
        drop(value);
        let sealed = SealedSecret {
            name: name.to_owned(),
            nonce: nonce.to_vec(),
            ciphertext,
        };
        let write = self.store.secret_put(&sealed, actor).await?;
        let action = match write {
            SecretWrite::Created => actions::SECRET_CREATED,
            SecretWrite::Updated => actions::SECRET_UPDATED,
        };
        self.store.audit_append(AuditEntry::new(actor, action, name)).await?;
        Ok(write)
    }

    /// Decrypts the secret `name`, recording the use (as [`SYSTEM_ACTOR`]). `None` if there
    /// is no such secret.
    pub async fn get(&self, name: &str) -> Result<Option<SecretString>, SecretsError> {
        self.get_for(name, SYSTEM_ACTOR).await
    }

    /// Decrypts the secret `name` on behalf of `actor`: updates its `last_used_at_ms` and
    /// audits `secret.used`. `None` if there is no such secret.
    pub async fn get_for(&self, name: &str, actor: &str) -> Result<Option<SecretString>, SecretsError> {
        validate_name(name)?;
        let Some(sealed) = self.store.secret_get(name).await? else {
            return Ok(None);
        };
        let value = self.open_sealed(&sealed)?;
        self.store.secret_touch(name, now_ms()).await?;
        self.store
            .audit_append(AuditEntry::new(actor, actions::SECRET_USED, name))
            .await?;
        Ok(Some(value))
    }

    fn open_sealed(&self, sealed: &SealedSecret) -> Result<SecretString, SecretsError> {
        let undecryptable = || SecretsError::Undecryptable {
            name: sealed.name.clone(),
            key_source: self.key.source().to_string(),
        };
        let nonce: [u8; NONCE_BYTES] = sealed.nonce.as_slice().try_into().map_err(|_| undecryptable())?;
        let aad = associated_data(&sealed.name);
        let plaintext = Zeroizing::new(
            self.key
                .cipher()
                .decrypt(
                    &XNonce::from(nonce),
                    Payload {
                        msg: &sealed.ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| undecryptable())?,
        );
        // Authenticated, so this only fails if something other than `set` sealed it.
        let text = std::str::from_utf8(&plaintext).map_err(|_| undecryptable())?;
        // From &str allocates exactly once; the decryption buffer is zeroized on drop.
        Ok(SecretString::from(text))
    }

    /// Every secret's name and times, never values.
    pub async fn list(&self) -> Result<Vec<SecretInfo>, SecretsError> {
        list(&self.store).await
    }

    /// Deletes the secret `name` and audits `secret.deleted` by `actor`. Returns whether it
    /// existed (nothing is audited if it did not).
    pub async fn delete(&self, name: &str, actor: &str) -> Result<bool, SecretsError> {
        delete(&self.store, name, actor).await
    }
}

/// Resolves `secret:NAME` values in MCP server `env` and `headers`; each use is audited.
impl crate::mcp::SecretSource for Secrets {
    fn secret(&self, name: &str) -> BoxFuture<'_, Result<Option<String>, String>> {
        let name = name.to_owned();
        Box::pin(async move {
            match self.get(&name).await {
                Ok(value) => Ok(value.map(|v| v.expose_secret().to_owned())),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

/// Every secret's name and times, never values. Needs no master key.
pub async fn list(store: &Store) -> Result<Vec<SecretInfo>, SecretsError> {
    Ok(store.secret_list().await?)
}

/// Deletes the secret `name` and audits `secret.deleted` by `actor`; needs no master key.
/// Returns whether it existed (nothing is audited if it did not).
pub async fn delete(store: &Store, name: &str, actor: &str) -> Result<bool, SecretsError> {
    validate_name(name)?;
    let existed = store.secret_delete(name).await?;
    if existed {
        store
            .audit_append(AuditEntry::new(actor, actions::SECRET_DELETED, name))
            .await?;
    }
    Ok(existed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for good in ["a", "github-token", "A.b_c-1", &"x".repeat(MAX_SECRET_NAME_LEN)] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "has space",
            "slash/name",
            "é",
            "semi;colon",
            &"x".repeat(MAX_SECRET_NAME_LEN + 1),
        ] {
            assert!(
                matches!(validate_name(bad), Err(SecretsError::InvalidName { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn env_key_must_be_64_hex_digits_and_is_never_echoed() {
        let config = Config::default();
        let short = SecretString::from("abcdef");
        let err = MasterKey::resolve(&config, Some(&short)).unwrap_err().to_string();
        assert!(err.contains("is 6 characters long"), "{err}");
        assert!(!err.contains("abcdef"), "the value must not be echoed: {err}");
        let not_hex = SecretString::from("zz".repeat(32));
        let err = MasterKey::resolve(&config, Some(&not_hex)).unwrap_err().to_string();
        assert!(err.contains("not hex digits") && !err.contains("zzzz"), "{err}");
    }

    #[test]
    fn debug_output_never_shows_key_material() {
        let key = MasterKey::from_hex(&"ab".repeat(32), KeySource::Env).unwrap();
        let shown = format!("{key:?}");
        assert_eq!(shown, "MasterKey { source: Env, .. }");
    }
}
