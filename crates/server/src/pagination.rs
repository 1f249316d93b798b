//! Cursor pagination shared by the list routes: `?limit=N&cursor=C`, answered with
//! `{"<items>": [...], "next_cursor": "…" | null}`.
//!
//! A cursor is opaque to clients: hex of a short text naming the last row of the page (its
//! sort key and id, or its seq). Each route decodes only the cursors it issued; anything
//! else is a 400 telling the client to pass `next_cursor` back unchanged. A `limit` above
//! [`MAX_PAGE_LIMIT`] is refused with a 400 rather than clamped, so a client never mistakes
//! a short page for the end of the list.

use axum::http::StatusCode;
use uuid::Uuid;

use crate::ApiError;

/// Rows per page when `limit` is not given.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;

/// Largest `limit` a list route accepts.
pub const MAX_PAGE_LIMIT: u32 = 200;

/// Longest cursor accepted, in bytes (ours are well under 200).
const MAX_CURSOR_BYTES: usize = 1024;

/// The page size `limit` asks for: [`DEFAULT_PAGE_LIMIT`] when absent, 400 when 0 or above
/// [`MAX_PAGE_LIMIT`].
pub fn page_limit(limit: Option<u32>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE_LIMIT as usize),
        Some(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => Ok(n as usize),
        Some(n) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_limit",
            format!("limit={n} is out of range"),
            format!("use a limit from 1 to {MAX_PAGE_LIMIT}, and follow next_cursor for more"),
        )),
    }
}

fn bad_cursor() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
        "the cursor is not one this list issued",
        "pass the next_cursor of the previous page unchanged (with the same filters), or omit cursor to start from the first page",
    )
}

/// Wraps a page key into an opaque cursor.
pub fn encode(key: &str) -> String {
    hex::encode(key)
}

/// The page key inside a cursor this node issued, or 400.
pub fn decode(cursor: &str) -> Result<String, ApiError> {
    if cursor.len() > MAX_CURSOR_BYTES {
        return Err(bad_cursor());
    }
    let bytes = hex::decode(cursor.trim()).map_err(|_| bad_cursor())?;
    String::from_utf8(bytes).map_err(|_| bad_cursor())
}

/// A cursor for lists ordered by a time (or other integer) and then an id.
pub fn encode_ordered(value: i64, id: Uuid) -> String {
    encode(&format!("{value}:{id}"))
}

/// The `(value, id)` of a cursor made by [`encode_ordered`], or 400.
pub fn decode_ordered(cursor: &str) -> Result<(i64, Uuid), ApiError> {
    let key = decode(cursor)?;
    let (value, id) = key.split_once(':').ok_or_else(bad_cursor)?;
    Ok((
        value.parse().map_err(|_| bad_cursor())?,
        Uuid::parse_str(id).map_err(|_| bad_cursor())?,
    ))
}

/// A cursor for lists ordered by a sequence number.
pub fn encode_seq(seq: i64) -> String {
    encode(&format!("seq:{seq}"))
}

/// The seq of a cursor made by [`encode_seq`], or 400.
pub fn decode_seq(cursor: &str) -> Result<i64, ApiError> {
    decode(cursor)?
        .strip_prefix("seq:")
        .and_then(|n| n.parse().ok())
        .ok_or_else(bad_cursor)
}

/// A cursor for lists ordered by an id alone.
pub fn encode_id(id: Uuid) -> String {
    encode(&format!("id:{id}"))
}

/// The id of a cursor made by [`encode_id`], or 400.
pub fn decode_id(cursor: &str) -> Result<Uuid, ApiError> {
    decode(cursor)?
        .strip_prefix("id:")
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(bad_cursor)
}

/// Cuts `rows` (fetched with one row more than `limit`) to a page, and names the next
/// page's cursor from the page's last row when there is more.
pub fn split<T>(mut rows: Vec<T>, limit: usize, cursor_of: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(cursor_of) } else { None };
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_foreign_ones() {
        let id = Uuid::now_v7();
        assert_eq!(decode_ordered(&encode_ordered(-5, id)).unwrap(), (-5, id));
        assert_eq!(decode_seq(&encode_seq(42)).unwrap(), 42);
        assert_eq!(decode_id(&encode_id(id)).unwrap(), id);
        for bad in ["zz", "", &encode("nope"), &encode_seq(1)] {
            assert_eq!(decode_ordered(bad).unwrap_err().body.code, "invalid_cursor", "{bad}");
        }
        assert_eq!(decode_seq(&encode_id(id)).unwrap_err().body.code, "invalid_cursor");
    }

    #[test]
    fn limits_default_and_refuse_out_of_range() {
        assert_eq!(page_limit(None).unwrap(), DEFAULT_PAGE_LIMIT as usize);
        assert_eq!(page_limit(Some(MAX_PAGE_LIMIT)).unwrap(), MAX_PAGE_LIMIT as usize);
        assert_eq!(page_limit(Some(0)).unwrap_err().body.code, "invalid_limit");
        assert_eq!(page_limit(Some(MAX_PAGE_LIMIT + 1)).unwrap_err().status, 400);
    }

    #[test]
    fn split_names_the_next_cursor_only_when_more_rows_exist() {
        let (page, next) = split(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!((page, next), (vec![1, 2], Some("2".to_owned())));
        let (page, next) = split(vec![1, 2], 2, |n| n.to_string());
        assert_eq!((page, next), (vec![1, 2], None));
    }
}
