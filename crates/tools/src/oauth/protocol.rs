//! The OAuth 2.1 client side of the MCP authorization specification, over reqwest:
//! protected-resource metadata (RFC 9728, found from the server's `WWW-Authenticate`
//! challenge or its well-known URL), authorization-server metadata (RFC 8414, with the
//! OpenID Connect discovery fallback), dynamic client registration (RFC 7591), PKCE with S256
//! (RFC 7636), the authorization URL with the `resource` indicator (RFC 8707), and the token
//! endpoint's `authorization_code` and `refresh_token` grants, and revocation (RFC 7009).
//! Holds no state and stores nothing; tokens leave only as [`SecretString`]s.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Time for one request to an authorization or resource server.
pub const OAUTH_HTTP_TIMEOUT: Duration = Duration::from_secs(15);

/// Largest metadata or token response read, in bytes.
pub const MAX_OAUTH_RESPONSE_BYTES: usize = 256 * 1024;

/// What went wrong talking OAuth. Messages name the server and the step, never a token.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OauthError {
    /// Discovery or registration could not be completed.
    #[error("{server}: {message}")]
    Setup {
        /// The MCP server.
        server: String,
        /// What failed and what to do.
        message: String,
    },
    /// The token endpoint refused a grant (`invalid_grant`: the code or refresh token is
    /// spent, expired or revoked).
    #[error("{server}: the authorization server refused the {grant}: {error}{}", .description.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        /// The MCP server.
        server: String,
        /// `authorization code` or `refresh token`.
        grant: &'static str,
        /// The OAuth error code.
        error: String,
        /// Its description.
        description: Option<String>,
    },
    /// The network or the server failed.
    #[error("{server}: {message}")]
    Http {
        /// The MCP server.
        server: String,
        /// What failed.
        message: String,
    },
}

impl OauthError {
    /// Whether the grant is dead and the person must connect again (as opposed to a
    /// failure worth retrying later).
    pub fn needs_reconnect(&self) -> bool {
        matches!(self, OauthError::Refused { error, .. } if error == "invalid_grant" || error == "invalid_client" || error == "unauthorized_client")
    }
}

/// Authorization-server metadata (RFC 8414), the fields we use.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AuthServerMetadata {
    /// Its issuer identifier.
    pub issuer: String,
    /// Where people are sent to sign in and consent.
    pub authorization_endpoint: String,
    /// Where codes and refresh tokens are exchanged.
    pub token_endpoint: String,
    /// Dynamic client registration (RFC 7591), if offered.
    #[serde(default)]
    pub registration_endpoint: Option<String>,
    /// Token revocation (RFC 7009), if offered.
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// PKCE methods it supports; must include `S256`.
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    /// Scopes it knows.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
}

/// What discovery found for an MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The protected resource's identifier (the `resource` parameter, RFC 8707).
    pub resource: String,
    /// Scopes the resource says it uses.
    pub scopes_supported: Vec<String>,
    /// The authorization server it names (the first).
    pub server: AuthServerMetadata,
}

#[derive(Debug, Deserialize)]
struct ProtectedResourceMetadata {
    resource: String,
    #[serde(default)]
    authorization_servers: Vec<String>,
    #[serde(default)]
    scopes_supported: Vec<String>,
}

/// A client registration's answer (RFC 7591 §3.2.1).
pub struct Registered {
    /// Its `client_id`.
    pub client_id: String,
    /// Its `client_secret`, for a confidential client.
    pub client_secret: Option<SecretString>,
}

#[derive(Deserialize)]
struct RegistrationResponse {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
}

/// Tokens from the token endpoint.
pub struct Tokens {
    /// The access token.
    pub access_token: SecretString,
    /// The refresh token, if one was issued (a refresh may rotate it).
    pub refresh_token: Option<SecretString>,
    /// Its lifetime in seconds, if given.
    pub expires_in_secs: Option<u64>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_in_secs", &self.expires_in_secs)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// A PKCE pair: the verifier (kept) and its S256 challenge (sent).
pub struct Pkce {
    /// `code_verifier`: 43 characters of base64url from 32 random bytes.
    pub verifier: String,
    /// `code_challenge` = BASE64URL(SHA256(verifier)).
    pub challenge: String,
}

/// 32 random bytes in base64url: for `state` and the PKCE verifier.
pub fn random_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("the system's random source failed: {e}"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The S256 challenge of `verifier` (RFC 7636 §4.2).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A fresh PKCE pair.
pub fn pkce() -> Result<Pkce, String> {
    let verifier = random_token()?;
    let challenge = s256(&verifier);
    Ok(Pkce { verifier, challenge })
}

/// What goes into an authorization request.
pub struct AuthorizeRequest<'a> {
    /// The authorization endpoint.
    pub endpoint: &'a str,
    /// Our client id.
    pub client_id: &'a str,
    /// Where the server sends the person back.
    pub redirect_uri: &'a str,
    /// The PKCE challenge.
    pub code_challenge: &'a str,
    /// The opaque `state` (its hash is what we keep).
    pub state: &'a str,
    /// The resource indicator.
    pub resource: &'a str,
    /// Scopes (space-joined; omitted when empty).
    pub scopes: &'a [String],
}

/// The URL a person's browser is sent to (authorization code flow with PKCE, RFC 8707
/// `resource`). A query the endpoint already has is kept.
pub fn authorize_url(request: &AuthorizeRequest<'_>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("response_type", "code")
        .append_pair("client_id", request.client_id)
        .append_pair("redirect_uri", request.redirect_uri)
        .append_pair("code_challenge", request.code_challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", request.state);
    // An API that is not an MCP server may have no resource identifier: then none is sent
    // (authorization servers that do not know RFC 8707 may refuse the parameter).
    if !request.resource.is_empty() {
        query.append_pair("resource", request.resource);
    }
    if !request.scopes.is_empty() {
        query.append_pair("scope", &request.scopes.join(" "));
    }
    let separator = if request.endpoint.contains('?') { '&' } else { '?' };
    format!("{}{separator}{}", request.endpoint, query.finish())
}

/// `scheme://host[:port]` and the path of `url`, or `None` for something that is not an
/// absolute http(s) URL.
fn split_url(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return None;
    }
    let path = path.trim_end_matches('/');
    Some((
        format!("{scheme}://{}", authority.to_ascii_lowercase()),
        path.to_owned(),
    ))
}

/// The well-known URLs for `suffix` of `url` (RFC 8414 §3.1 / RFC 9728 §3.1: inserted
/// between the host and the path, then at the root).
fn well_known(url: &str, suffix: &str) -> Vec<String> {
    let Some((origin, path)) = split_url(url) else {
        return Vec::new();
    };
    let mut urls = vec![format!("{origin}/.well-known/{suffix}{path}")];
    if !path.is_empty() {
        urls.push(format!("{origin}/.well-known/{suffix}"));
    }
    urls
}

/// The `resource_metadata` parameter of a `WWW-Authenticate: Bearer …` challenge.
pub fn resource_metadata_from_challenge(challenge: &str) -> Option<String> {
    let at = challenge.find("resource_metadata=")? + "resource_metadata=".len();
    let rest = &challenge[at..];
    let value = if let Some(quoted) = rest.strip_prefix('"') {
        quoted.split('"').next()?
    } else {
        rest.split([',', ' ']).next()?
    };
    (!value.is_empty()).then(|| value.to_owned())
}

/// The client all OAuth requests go through: no redirects followed (a token endpoint
/// answers directly), bounded time.
pub fn http_client() -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(OAUTH_HTTP_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    server: &str,
    what: &str,
) -> Result<T, OauthError> {
    let http = |message: String| OauthError::Http {
        server: server.to_owned(),
        message,
    };
    if response
        .content_length()
        .is_some_and(|n| n as usize > MAX_OAUTH_RESPONSE_BYTES)
    {
        return Err(http(format!("the {what} is over {MAX_OAUTH_RESPONSE_BYTES} bytes")));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| http(format!("reading the {what} failed: {e}")))?;
    if bytes.len() > MAX_OAUTH_RESPONSE_BYTES {
        return Err(http(format!("the {what} is over {MAX_OAUTH_RESPONSE_BYTES} bytes")));
    }
    serde_json::from_slice(&bytes).map_err(|e| http(format!("the {what} is not the JSON expected: {e}")))
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    server: &str,
    what: &str,
) -> Result<Option<T>, OauthError> {
    let response = http
        .get(url)
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(|e| OauthError::Http {
            server: server.to_owned(),
            message: format!("fetching the {what} at {url} failed: {e}"),
        })?;
    if !response.status().is_success() {
        return Ok(None);
    }
    read_json(response, server, what).await.map(Some)
}

/// Discovers how `mcp_url` is protected: asks it unauthenticated for its challenge, reads
/// the protected-resource metadata it names (or its well-known one), then the first
/// authorization server's metadata. Refuses an authorization server without PKCE S256 (the
/// MCP specification requires it).
pub async fn discover(http: &reqwest::Client, server: &str, mcp_url: &str) -> Result<Discovered, OauthError> {
    let setup = |message: String| OauthError::Setup {
        server: server.to_owned(),
        message,
    };
    let probe = http
        .post(mcp_url)
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#)
        .send()
        .await
        .map_err(|e| OauthError::Http {
            server: server.to_owned(),
            message: format!("cannot reach {mcp_url}: {e}"),
        })?;
    let challenged = probe
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(resource_metadata_from_challenge);
    let mut candidates: Vec<String> = challenged.into_iter().collect();
    candidates.extend(well_known(mcp_url, "oauth-protected-resource"));
    let mut metadata = None;
    for url in &candidates {
        if let Some(found) =
            get_json::<ProtectedResourceMetadata>(http, url, server, "protected-resource metadata").await?
        {
            metadata = Some(found);
            break;
        }
    }
    let metadata = metadata.ok_or_else(|| {
        setup(format!(
            "{mcp_url} publishes no OAuth protected-resource metadata (looked at {}); it may not use OAuth — \
             connect it with a token instead (`coworker mcp add … --header Authorization=…`)",
            candidates.join(", ")
        ))
    })?;
    // RFC 9728 §3.3: the metadata must be about this resource (same origin; a path prefix).
    let same = split_url(&metadata.resource)
        .zip(split_url(mcp_url))
        .is_some_and(|((o1, p1), (o2, p2))| o1 == o2 && p2.starts_with(&p1));
    if !same {
        return Err(setup(format!(
            "the protected-resource metadata is for {:?}, not for {mcp_url}; refusing it",
            metadata.resource
        )));
    }
    let issuer = metadata
        .authorization_servers
        .first()
        .cloned()
        .ok_or_else(|| setup("the protected-resource metadata names no authorization server".to_owned()))?;
    let mut as_candidates = well_known(&issuer, "oauth-authorization-server");
    as_candidates.extend(well_known(&issuer, "openid-configuration"));
    if let Some((origin, path)) = split_url(&issuer)
        && !path.is_empty()
    {
        as_candidates.push(format!("{origin}{path}/.well-known/openid-configuration"));
    }
    let mut found = None;
    for url in &as_candidates {
        if let Some(meta) = get_json::<AuthServerMetadata>(http, url, server, "authorization-server metadata").await? {
            found = Some(meta);
            break;
        }
    }
    let auth_server = found.ok_or_else(|| {
        setup(format!(
            "the authorization server {issuer} publishes no metadata (looked at {})",
            as_candidates.join(", ")
        ))
    })?;
    if auth_server.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(setup(format!(
            "the authorization server's metadata names issuer {:?}, not {issuer:?}; refusing it",
            auth_server.issuer
        )));
    }
    if !auth_server.code_challenge_methods_supported.iter().any(|m| m == "S256") {
        return Err(setup(format!(
            "the authorization server {issuer} does not offer PKCE with S256, which the MCP authorization \
             specification requires; Coworker will not connect without it"
        )));
    }
    Ok(Discovered {
        resource: metadata.resource,
        scopes_supported: metadata.scopes_supported,
        server: auth_server,
    })
}

/// Discovers how people sign in to an OpenAPI connection from what its document says: an
/// `openIdConnect` scheme's provider metadata; for an `oauth2` authorization code flow, the
/// document's endpoints, with the dynamic registration and revocation endpoints of the
/// server's RFC 8414 (or OpenID) metadata at the authorization URL's origin when it
/// publishes metadata about those same endpoints. No `resource` is sent for an API.
pub async fn discover_api(
    http: &reqwest::Client,
    server: &str,
    sign_in: &crate::openapi::SignIn,
) -> Result<Discovered, OauthError> {
    let setup = |message: String| OauthError::Setup {
        server: server.to_owned(),
        message,
    };
    let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
    let meta = match sign_in {
        crate::openapi::SignIn::OpenIdConnect { url } => {
            get_json::<AuthServerMetadata>(http, url, server, "OpenID Connect metadata")
                .await?
                .ok_or_else(|| setup(format!("the OpenID Connect metadata at {url} is not there")))?
        }
        crate::openapi::SignIn::AuthorizationCode {
            authorization_url,
            token_url,
            ..
        } => {
            let mut found = None;
            if let Some((origin, _)) = split_url(authorization_url) {
                for url in [
                    format!("{origin}/.well-known/oauth-authorization-server"),
                    format!("{origin}/.well-known/openid-configuration"),
                ] {
                    // Optional: a server without metadata is used as the document says.
                    if let Ok(Some(meta)) =
                        get_json::<AuthServerMetadata>(http, &url, server, "authorization-server metadata").await
                        && same(&meta.authorization_endpoint, authorization_url)
                        && same(&meta.token_endpoint, token_url)
                    {
                        found = Some(meta);
                        break;
                    }
                }
            }
            found.unwrap_or_else(|| AuthServerMetadata {
                issuer: split_url(token_url)
                    .map(|(origin, _)| origin)
                    .unwrap_or_else(|| token_url.clone()),
                authorization_endpoint: authorization_url.clone(),
                token_endpoint: token_url.clone(),
                registration_endpoint: None,
                revocation_endpoint: None,
                code_challenge_methods_supported: Vec::new(),
                scopes_supported: Vec::new(),
            })
        }
    };
    Ok(Discovered {
        resource: String::new(),
        scopes_supported: Vec::new(),
        server: meta,
    })
}

/// Registers a public client (RFC 7591) that uses the authorization code and refresh token
/// grants with `redirect_uri`.
pub async fn register(
    http: &reqwest::Client,
    server: &str,
    endpoint: &str,
    redirect_uri: &str,
    scopes: &[String],
) -> Result<Registered, OauthError> {
    let mut body = serde_json::json!({
        "client_name": "Coworker",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    if !scopes.is_empty() {
        body["scope"] = serde_json::Value::String(scopes.join(" "));
    }
    let response = http
        .post(endpoint)
        .json(&body)
        .send()
        .await
        .map_err(|e| OauthError::Http {
            server: server.to_owned(),
            message: format!("dynamic client registration at {endpoint} failed: {e}"),
        })?;
    if !response.status().is_success() {
        let status = response.status();
        let detail = read_json::<ErrorResponse>(response, server, "registration error")
            .await
            .map(|e| {
                format!(
                    ": {}{}",
                    e.error,
                    e.error_description.map(|d| format!(" ({d})")).unwrap_or_default()
                )
            })
            .unwrap_or_default();
        return Err(OauthError::Setup {
            server: server.to_owned(),
            message: format!(
                "the authorization server refused to register Coworker as a client (HTTP {status}{detail}); \
                 register one by hand and set [mcp.oauth] client_id"
            ),
        });
    }
    let registered: RegistrationResponse = read_json(response, server, "registration response").await?;
    Ok(Registered {
        client_id: registered.client_id,
        client_secret: registered
            .client_secret
            .filter(|s| !s.is_empty())
            .map(SecretString::from),
    })
}

/// The client credentials a token request carries.
pub struct ClientAuth<'a> {
    /// `client_id`.
    pub client_id: &'a str,
    /// `client_secret`, for a confidential client (sent in the body, `client_secret_post`).
    pub client_secret: Option<&'a SecretString>,
}

async fn token_request(
    http: &reqwest::Client,
    server: &str,
    endpoint: &str,
    client: &ClientAuth<'_>,
    grant: &'static str,
    form: Vec<(&str, &str)>,
) -> Result<Tokens, OauthError> {
    let form: Vec<(&str, &str)> = form
        .into_iter()
        .filter(|(key, value)| *key != "resource" || !value.is_empty())
        .collect();
    let body = client_form(&form, client);
    let response = http
        .post(endpoint)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| OauthError::Http {
            server: server.to_owned(),
            message: format!("the token request to {endpoint} failed: {e}"),
        })?;
    let status = response.status();
    if !status.is_success() {
        let refused = read_json::<ErrorResponse>(response, server, "token error").await;
        return Err(match refused {
            Ok(e) => OauthError::Refused {
                server: server.to_owned(),
                grant,
                error: e.error,
                description: e.error_description,
            },
            Err(_) => OauthError::Http {
                server: server.to_owned(),
                message: format!("the token endpoint {endpoint} answered HTTP {status}"),
            },
        });
    }
    let tokens: TokenResponse = read_json(response, server, "token response").await?;
    if !tokens.token_type.is_empty() && !tokens.token_type.eq_ignore_ascii_case("bearer") {
        return Err(OauthError::Http {
            server: server.to_owned(),
            message: format!(
                "the token endpoint issued a {:?} token; only bearer tokens are supported",
                tokens.token_type
            ),
        });
    }
    Ok(Tokens {
        access_token: SecretString::from(tokens.access_token),
        refresh_token: tokens.refresh_token.filter(|t| !t.is_empty()).map(SecretString::from),
        expires_in_secs: tokens.expires_in,
    })
}

/// Exchanges an authorization `code` with its PKCE `verifier` (the `resource` repeated, RFC
/// 8707 §2.2).
#[allow(clippy::too_many_arguments)]
pub async fn exchange_code(
    http: &reqwest::Client,
    server: &str,
    token_endpoint: &str,
    client: &ClientAuth<'_>,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
    resource: &str,
) -> Result<Tokens, OauthError> {
    token_request(
        http,
        server,
        token_endpoint,
        client,
        "authorization code",
        vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
            ("resource", resource),
        ],
    )
    .await
}

/// Uses `refresh_token` for new tokens for `resource`.
pub async fn refresh(
    http: &reqwest::Client,
    server: &str,
    token_endpoint: &str,
    client: &ClientAuth<'_>,
    refresh_token: &SecretString,
    resource: &str,
) -> Result<Tokens, OauthError> {
    token_request(
        http,
        server,
        token_endpoint,
        client,
        "refresh token",
        vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
            ("resource", resource),
        ],
    )
    .await
}

/// Asks the authorization server to revoke `token` (RFC 7009). Best effort: a server without
/// the endpoint, or that fails, leaves the token to expire.
pub async fn revoke(
    http: &reqwest::Client,
    server: &str,
    endpoint: &str,
    client: &ClientAuth<'_>,
    token: &SecretString,
    hint: &str,
) -> Result<(), OauthError> {
    let body = client_form(&[("token", token.expose_secret()), ("token_type_hint", hint)], client);
    let response = http
        .post(endpoint)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| OauthError::Http {
            server: server.to_owned(),
            message: format!("revocation at {endpoint} failed: {e}"),
        })?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(OauthError::Http {
            server: server.to_owned(),
            message: format!("revocation at {endpoint} answered HTTP {}", response.status()),
        })
    }
}

/// A form body of `pairs` plus the client's credentials (`client_id`, and `client_secret`
/// when it has one), wiped from memory when dropped. Built in one go: the serializer is not
/// `Send` and must not live across a request.
fn client_form(pairs: &[(&str, &str)], client: &ClientAuth<'_>) -> zeroize::Zeroizing<String> {
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        body.append_pair(k, v);
    }
    body.append_pair("client_id", client.client_id);
    if let Some(secret) = client.client_secret {
        body.append_pair("client_secret", secret.expose_secret());
    }
    zeroize::Zeroizing::new(body.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_the_rfc_example() {
        // RFC 7636 appendix B.
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let pair = pkce().unwrap();
        assert_eq!(pair.verifier.len(), 43);
        assert_eq!(pair.challenge, s256(&pair.verifier));
    }

    #[test]
    fn well_known_urls_insert_the_path() {
        assert_eq!(
            well_known("https://mcp.example.com/v1/mcp/", "oauth-protected-resource"),
            [
                "https://mcp.example.com/.well-known/oauth-protected-resource/v1/mcp",
                "https://mcp.example.com/.well-known/oauth-protected-resource"
            ]
        );
        assert_eq!(
            well_known("https://AS.example.com", "oauth-authorization-server"),
            ["https://as.example.com/.well-known/oauth-authorization-server"]
        );
        assert!(well_known("ftp://x", "a").is_empty());
    }

    #[test]
    fn challenges_name_the_metadata() {
        assert_eq!(
            resource_metadata_from_challenge(
                r#"Bearer error="invalid_token", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp""#
            )
            .as_deref(),
            Some("https://mcp.example.com/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(
            resource_metadata_from_challenge("Bearer resource_metadata=https://x/y, realm=a").as_deref(),
            Some("https://x/y")
        );
        assert_eq!(resource_metadata_from_challenge("Bearer realm=\"x\""), None);
    }

    #[test]
    fn the_authorize_url_carries_pkce_state_and_resource() {
        let url = authorize_url(&AuthorizeRequest {
            endpoint: "https://as.example.com/authorize?tenant=a",
            client_id: "c1",
            redirect_uri: "http://localhost:8080/oauth/callback",
            code_challenge: "abc",
            state: "s t",
            resource: "https://mcp.example.com/mcp",
            scopes: &["read".to_owned(), "write".to_owned()],
        });
        assert!(
            url.starts_with("https://as.example.com/authorize?tenant=a&response_type=code&"),
            "{url}"
        );
        for part in [
            "code_challenge_method=S256",
            "state=s+t",
            "resource=https%3A%2F%2Fmcp.example.com%2Fmcp",
            "scope=read+write",
            "redirect_uri=http%3A%2F%2Flocalhost%3A8080%2Foauth%2Fcallback",
        ] {
            assert!(url.contains(part), "{part} in {url}");
        }
    }
}
