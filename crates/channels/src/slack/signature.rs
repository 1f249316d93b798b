//! Verifying that an HTTP request came from Slack: `X-Slack-Signature` is
//! `v0=` + hex(HMAC-SHA256(signing secret, `v0:{timestamp}:{body}`)), compared in constant
//! time, and `X-Slack-Request-Timestamp` must be within five minutes of now (replays of an
//! old, validly signed request are refused).

use hmac::{KeyInit, Mac};
use sha2::Sha256;

/// Largest age (either way) of a request's timestamp, in seconds.
pub const MAX_REQUEST_AGE_SECS: i64 = 5 * 60;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header is missing or malformed.
    #[error("missing or malformed {0} header")]
    Header(&'static str),
    /// The timestamp is outside the window.
    #[error(
        "request timestamp is {age_secs} s away from now (limit {MAX_REQUEST_AGE_SECS} s): a replay or a wrong clock"
    )]
    Stale {
        /// How far off.
        age_secs: i64,
    },
    /// The signature does not match.
    #[error("signature does not match: check slack.signing_secret")]
    Mismatch,
}

/// The signature Slack sends for `body` at `timestamp` (also used by the test fake).
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a request's timestamp and signature headers against `body`, at `now_secs`.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_secs: i64,
) -> Result<(), SignatureError> {
    let timestamp = timestamp.ok_or(SignatureError::Header("X-Slack-Request-Timestamp"))?;
    let at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::Header("X-Slack-Request-Timestamp"))?;
    let age_secs = (now_secs - at).abs();
    if age_secs > MAX_REQUEST_AGE_SECS {
        return Err(SignatureError::Stale { age_secs });
    }
    let signature = signature.ok_or(SignatureError::Header("X-Slack-Signature"))?;
    let given = signature
        .trim()
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(SignatureError::Header("X-Slack-Signature"))?;
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(b"v0:");
    mac.update(timestamp.trim().as_bytes());
    mac.update(b":");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given).map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked example from Slack's "Verifying requests from Slack" guide.
    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
    const TS: &str = "1531420618";
    const BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const EXPECTED: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    #[test]
    fn matches_slacks_documented_example() {
        assert_eq!(sign(SECRET, TS, BODY), EXPECTED);
        assert_eq!(verify(SECRET, Some(TS), Some(EXPECTED), BODY, 1531420618 + 10), Ok(()));
    }

    #[test]
    fn refuses_tampering_staleness_and_missing_headers() {
        let now = 1531420618;
        assert_eq!(
            verify(SECRET, Some(TS), Some(EXPECTED), b"token=other", now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"wrong", Some(TS), Some(EXPECTED), BODY, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, Some(TS), Some(EXPECTED), BODY, now + 301),
            Err(SignatureError::Stale { age_secs: 301 })
        );
        assert_eq!(
            verify(SECRET, None, Some(EXPECTED), BODY, now),
            Err(SignatureError::Header("X-Slack-Request-Timestamp"))
        );
        assert_eq!(
            verify(SECRET, Some(TS), None, BODY, now),
            Err(SignatureError::Header("X-Slack-Signature"))
        );
        assert_eq!(
            verify(SECRET, Some(TS), Some("v1=zz"), BODY, now),
            Err(SignatureError::Header("X-Slack-Signature"))
        );
    }
}
