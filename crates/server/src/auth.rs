//! Authentication: bearer tokens (API clients, the CLI) and session cookies (the web app),
//! both resolved to one [`Principal`]; CSRF checks for cookie-authenticated requests.
//!
//! Tokens and session secrets are 256 random bits, shown once, and stored only as SHA-256
//! hashes (a fast hash is right here: the input is high-entropy, unlike a password).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use coworker_core::SessionId;
use coworker_core::domain::Role;
use coworker_store::{ApiToken, Store, TokenKind, User};
use sha2::{Digest, Sha256};

use crate::ApiError;

/// Prefix of every token Coworker issues, so leaked tokens are recognisable by scanners.
pub const TOKEN_PREFIX: &str = "cwk_";

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "coworker_session";

/// How long a session lasts without use, in milliseconds (14 days; extended while used).
pub const SESSION_TTL_MS: i64 = 14 * 24 * 60 * 60 * 1000;

/// Header that carries the CSRF token on script-made requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Form field that carries the CSRF token on HTML form posts.
pub const CSRF_FIELD: &str = "_csrf";

/// Largest form body the CSRF check reads, in bytes (forms carry briefs and notes, not files).
pub const MAX_FORM_BYTES: usize = 256 * 1024;

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

/// How the caller proved who they are.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A bearer token.
    Token(ApiToken),
    /// A browser session cookie.
    Session {
        /// The session.
        id: SessionId,
        /// Its CSRF token, for forms the page renders.
        csrf_token: String,
    },
    /// A person acting through a channel (Slack) that authenticated them and is linked to
    /// their account; never an HTTP credential.
    Channel(String),
}

/// Who is calling: attached to every authenticated request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user, with `role` already lowered to the token's cap if it has one.
    pub user: User,
    /// The credential used.
    pub credential: Credential,
}

impl Principal {
    /// How this caller appears in the audit log.
    pub fn actor(&self) -> String {
        format!("user:{}", self.user.id)
    }

    /// The session's CSRF token (empty for token callers, who need none).
    pub fn csrf_token(&self) -> &str {
        match &self.credential {
            Credential::Session { csrf_token, .. } => csrf_token,
            Credential::Token(_) | Credential::Channel(_) => "",
        }
    }

    /// Whether the caller may act with at least `required`.
    pub fn has(&self, required: Role) -> bool {
        self.user.role.at_least(required)
    }

    /// Fails with 403 unless the caller's role is at least `required`.
    pub fn require(&self, required: Role) -> Result<(), ApiError> {
        if self.has(required) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this needs the {required} role; you are {}", self.user.role),
                "ask an admin or owner to change your role",
            ))
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Resolves the request's credential: `Authorization: Bearer …` first, else the session
/// cookie. `Ok(None)` when neither is present; 401 when one is present but not valid.
/// Sign-in tokens are not credentials and are refused.
pub async fn resolve(store: &Store, headers: &HeaderMap) -> Result<Option<Principal>, ApiError> {
    if let Some(header) = headers.get(AUTHORIZATION) {
        let header = header
            .to_str()
            .map_err(|_| ApiError::unauthorized("Authorization header is not text"))?;
        let secret = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::unauthorized("Authorization header is not `Bearer <token>`"))?;
        return match store.authenticate_token(&hash_token(secret)).await? {
            Some((token, Some(mut user))) if token.kind != TokenKind::Signin => {
                if let Some(cap) = token.role {
                    user.role = user.role.min(cap);
                }
                Ok(Some(Principal {
                    user,
                    credential: Credential::Token(token),
                }))
            }
            _ => Err(ApiError::unauthorized("token is unknown, revoked or expired")),
        };
    }
    let Some(secret) = cookie(headers, SESSION_COOKIE).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    match store.authenticate_session(&hash_token(secret), SESSION_TTL_MS).await? {
        Some(session) => Ok(Some(Principal {
            user: session.user,
            credential: Credential::Session {
                id: session.id,
                csrf_token: session.csrf_token,
            },
        })),
        None => Ok(None),
    }
}

/// Whether a request with this method changes state (and so needs a CSRF token when it
/// comes with a session cookie).
pub fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Checks the CSRF token of a cookie-authenticated, state-changing request: the
/// `X-CSRF-Token` header, or the `_csrf` field of a URL-encoded form (the body is read and
/// handed on unchanged). Returns the request to pass on, or 403.
pub async fn check_csrf(expected: &str, request: Request) -> Result<Request, ApiError> {
    let refused = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf_failed",
            "this request did not carry this session's CSRF token",
            "reload the page and submit the form again; scripts send the token from <meta name=\"csrf-token\"> as the X-CSRF-Token header",
        )
    };
    if let Some(sent) = request.headers().get(CSRF_HEADER) {
        return if constant_time_eq(sent.as_bytes(), expected.as_bytes()) {
            Ok(request)
        } else {
            Err(refused())
        };
    }
    let is_form = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(refused());
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the form is larger than {MAX_FORM_BYTES} bytes"),
            "shorten the text, or attach long material as a file",
        )
    })?;
    let sent = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.into_owned());
    match sent {
        Some(sent) if constant_time_eq(sent.as_bytes(), expected.as_bytes()) => {
            Ok(Request::from_parts(parts, Body::from(bytes)))
        }
        _ => Err(refused()),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware for `/api/v1`: resolves the caller or answers 401, and enforces CSRF on
/// cookie-authenticated state-changing requests.
pub async fn require_principal(State(store): State<Store>, request: Request, next: Next) -> Result<Response, ApiError> {
    let principal = resolve(&store, request.headers())
        .await?
        .ok_or_else(|| ApiError::unauthorized("missing Authorization header or session cookie"))?;
    let mut request = match &principal.credential {
        Credential::Session { csrf_token, .. } if is_state_changing(request.method()) => {
            check_csrf(csrf_token, request).await?
        }
        _ => request,
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

    #[test]
    fn cookies_are_found_among_several_headers() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, "a=1; coworker_session=abc ".parse().unwrap());
        headers.append(COOKIE, "b=2".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[tokio::test]
    async fn csrf_accepts_the_form_field_or_header_and_refuses_anything_else() {
        let form = |body: &'static str| {
            Request::builder()
                .method(Method::POST)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap()
        };
        let passed = check_csrf("tok", form("note=hi&_csrf=tok")).await.unwrap();
        let body = axum::body::to_bytes(passed.into_body(), 1024).await.unwrap();
        assert_eq!(
            &body[..],
            b"note=hi&_csrf=tok",
            "the body reaches the handler unchanged"
        );
        assert_eq!(
            check_csrf("tok", form("note=hi")).await.unwrap_err().body.code,
            "csrf_failed"
        );
        assert_eq!(
            check_csrf("tok", form("_csrf=tox")).await.unwrap_err().body.code,
            "csrf_failed"
        );
        let header = Request::builder()
            .method(Method::POST)
            .header(CSRF_HEADER, "tok")
            .body(Body::empty())
            .unwrap();
        assert!(check_csrf("tok", header).await.is_ok());
        let json = Request::builder()
            .method(Method::POST)
            .header(CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap();
        assert_eq!(check_csrf("tok", json).await.unwrap_err().body.code, "csrf_failed");
    }
}
