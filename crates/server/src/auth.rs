//! Bearer-token authentication. Tokens are 256 random bits, shown once, and stored only as
//! SHA-256 hashes (a fast hash is right here: the input is high-entropy, unlike a password).

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use coworker_core::domain::Role;
use coworker_store::{ApiToken, Store, TokenKind, User};
use sha2::{Digest, Sha256};

use crate::ApiError;

/// Prefix of every token Coworker issues, so leaked tokens are recognisable by scanners.
pub const TOKEN_PREFIX: &str = "cwk_";

/// A freshly generated token secret.
pub fn generate_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{TOKEN_PREFIX}{}", hex::encode(bytes)))
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.trim().as_bytes()).to_vec()
}

/// Who is calling: attached to every authenticated request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token used.
    pub token: ApiToken,
    /// Its user.
    pub user: User,
}

impl Principal {
    /// How this caller appears in the audit log.
    pub fn actor(&self) -> String {
        format!("user:{}", self.user.id)
    }

    /// Fails with 403 unless the caller's role is at least `required`.
    pub fn require(&self, required: Role) -> Result<(), ApiError> {
        if self.user.role.at_least(required) {
            Ok(())
        } else {
            Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                format!("this needs the {required} role; you are {}", self.user.role),
                "ask an admin or owner to change your role",
            ))
        }
    }
}

/// Middleware: resolves `Authorization: Bearer …` to a [`Principal`] or answers 401.
/// Sign-in tokens are not API credentials and are refused here.
pub async fn require_bearer(
    State(store): State<Store>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::unauthorized("missing Authorization header"))?;
    let secret = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::unauthorized("Authorization header is not `Bearer <token>`"))?;
    let found = store.authenticate_token(&hash_token(secret)).await?;
    let principal = match found {
        Some((token, Some(user))) if token.kind != TokenKind::Signin => Principal { token, user },
        _ => return Err(ApiError::unauthorized("token is unknown, revoked or expired")),
    };
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_hash_stably() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
        assert_ne!(a, b);
        assert_eq!(hash_token(&a), hash_token(&format!(" {a}\n")));
        assert_ne!(hash_token(&a), hash_token(&b));
    }
}
