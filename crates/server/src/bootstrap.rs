//! First-run bootstrap: the owner account, the owner credential file in the data dir (0600)
//! that local CLI work commands use, and the one-time sign-in token printed at start-up.

use std::path::{Path, PathBuf};

use coworker_core::domain::Role;
use coworker_store::{NewUser, Store, TokenKind, User, now_ms};

use crate::NodeError;
use crate::auth::{generate_token, hash_token};
use crate::datadir::write_private;

/// Name of the owner credential file inside the data dir.
pub const OWNER_CREDENTIAL_FILE: &str = "owner.token";

/// How long a printed sign-in token stays valid, in milliseconds (24 h).
pub const SIGNIN_TOKEN_TTL_MS: i64 = 24 * 60 * 60 * 1000;

/// What bootstrap did, for the start-up banner.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The owner account.
    pub owner: User,
    /// Path of the owner credential file.
    pub owner_credential_path: PathBuf,
    /// Whether this start created the owner (first run).
    pub first_run: bool,
    /// A fresh one-time sign-in token while the owner has not claimed the account.
    pub signin_token: Option<String>,
}

/// Ensures the owner, their credential file and (until claimed) a sign-in token exist.
///
/// Each data dir has its own owner credential (named after the data dir), so starting one
/// node never revokes another's. `serving` is false for engine-only nodes (`coworker
/// worker`): they neither write a credential nor rotate the sign-in token a serving node
/// printed.
pub async fn run(store: &Store, data_dir: &Path, serving: bool) -> Result<Bootstrap, NodeError> {
    let (owner, first_run) = match store.first_owner().await? {
        Some(owner) => (owner, false),
        None => {
            let owner = store
                .create_user(NewUser {
                    email: None,
                    display_name: "Owner".into(),
                    role: Role::Owner,
                })
                .await?;
            tracing::info!(user_id = %owner.id, "first run: created the owner account");
            (owner, true)
        }
    };

    let credential_path = data_dir.join(OWNER_CREDENTIAL_FILE);
    if !serving {
        return Ok(Bootstrap {
            owner,
            owner_credential_path: credential_path,
            first_run,
            signin_token: None,
        });
    }
    let credential_name = format!("owner credential ({})", data_dir.display());
    let credential_valid = match std::fs::read_to_string(&credential_path) {
        Ok(secret) => matches!(
            store.authenticate_token(&hash_token(&secret)).await?,
            Some((token, Some(user))) if token.kind == TokenKind::OwnerCredential && user.id == owner.id
        ),
        Err(_) => false,
    };
    if !credential_valid {
        // Missing, corrupted or from another database: replace it and revoke the one this
        // data dir held before (other nodes' credentials stay valid).
        store
            .revoke_named_tokens(TokenKind::OwnerCredential, owner.id, &credential_name)
            .await?;
        let secret = new_secret()?;
        store
            .create_token(
                Some(owner.id),
                &credential_name,
                TokenKind::OwnerCredential,
                &hash_token(&secret),
                None,
            )
            .await?;
        write_private(&credential_path, &secret).map_err(|source| NodeError::Io {
            context: format!("writing {}", credential_path.display()),
            source,
        })?;
    }

    let signin_token = if owner.email.is_none() {
        store.revoke_tokens(TokenKind::Signin, None).await?;
        let secret = new_secret()?;
        store
            .create_token(
                Some(owner.id),
                "first-run sign-in",
                TokenKind::Signin,
                &hash_token(&secret),
                Some(now_ms() + SIGNIN_TOKEN_TTL_MS),
            )
            .await?;
        Some(secret)
    } else {
        None
    };

    Ok(Bootstrap {
        owner,
        owner_credential_path: credential_path,
        first_run,
        signin_token,
    })
}

fn new_secret() -> Result<String, NodeError> {
    generate_token().map_err(|e| NodeError::Io {
        context: "generating a token".into(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Reads the owner credential a node wrote into `data_dir`, if present.
pub fn read_owner_credential(data_dir: &Path) -> Option<String> {
    std::fs::read_to_string(data_dir.join(OWNER_CREDENTIAL_FILE))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}
