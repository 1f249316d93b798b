//! Password hashing with Argon2id (the `argon2` crate's defaults: m = 19 MiB, t = 2, p = 1,
//! OWASP's recommendation), run off the async executor. Passwords are never logged.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Most bytes a password may have (hashing cost must not be attacker-controlled).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a password was not accepted.
pub fn check_strength(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("the password must have at most {MAX_PASSWORD_BYTES} bytes"));
    }
    Ok(())
}

/// Hashes a password into a PHC string (`$argon2id$v=19$…`).
pub async fn hash(password: &str) -> Result<String, String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|e| format!("hashing the password failed: {e}"))
    })
    .await
    .map_err(|e| format!("hashing the password failed: {e}"))?
}

/// Whether `password` matches the PHC string `stored`. A malformed stored hash never matches.
pub async fn verify(password: &str, stored: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let password = password.to_owned();
    let stored = stored.to_owned();
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored)
            .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// Spends the time a verification would, for sign-ins to unknown accounts, so the response
/// time does not tell whether an account exists.
pub async fn burn(password: &str) {
    if password.len() <= MAX_PASSWORD_BYTES {
        let _ = hash(password).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let a = hash("correct horse battery").await.unwrap();
        let b = hash("correct horse battery").await.unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify("correct horse battery", &a).await);
        assert!(!verify("correct horse batterY", &a).await);
        assert!(!verify("anything", "not a phc string").await);
    }

    #[test]
    fn weak_and_huge_passwords_are_refused() {
        assert!(check_strength("short").is_err());
        assert!(check_strength(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
        assert!(check_strength("long enough pass").is_ok());
    }
}
