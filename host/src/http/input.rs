//! Values no read store can hold, refused at the edge before any plugin runs or anything is
//! appended: the U+0000 character anywhere in a command body (keys and values, nested), in a
//! path segment or a query parameter; a path or query that is not UTF-8 once percent-decoded;
//! and JSON numbers beyond the 64-bit integer range, the widest numeric column of every store.
//!
//! Why here: PostgreSQL refuses NUL in text where SQLite and MariaDB keep it, so an event
//! carrying one would be appended, then fail in one backend's projection and not another's. The
//! host knows no domain, so the rules are about text and numbers only, never about fields.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::ApiError;

/// What every refusal of a NUL says after naming the place.
const NUL: &str = "contains a NUL character (U+0000), which no read store can hold";

/// Middleware: the request's path and query string are UTF-8 once percent-decoded and hold no
/// NUL, for every route (plugin routes, the generic API and admin alike).
pub async fn check_request_target(request: Request, next: Next) -> Response {
    if let Err(e) = check_path(request.uri().path()).and_then(|()| query_pairs(request.uri().query()).map(|_| ())) {
        return e.into_response();
    }
    next.run(request).await
}

/// Each `/`-separated segment of a raw path, percent-decoded, is UTF-8 without NUL.
pub fn check_path(path: &str) -> Result<(), ApiError> {
    for (i, raw) in path.split('/').filter(|s| !s.is_empty()).enumerate() {
        let bytes: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
        let text = String::from_utf8(bytes).map_err(|_| {
            ApiError::BadPath(format!("path segment {} ({raw:?}) is not UTF-8 once percent-decoded", i + 1))
        })?;
        if text.contains('\0') {
            return Err(ApiError::BadPath(format!("path segment {} ({raw:?}) {NUL}", i + 1)));
        }
    }
    Ok(())
}

/// The query string's `name=value` pairs, decoded as forms are (`+` is a space), refusing what
/// is not UTF-8 or holds a NUL instead of replacing it.
pub fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let Some(query) = query else { return Ok(Vec::new()) };
    let mut pairs = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode_query_part(name, || format!("a query parameter name ({name:?})"))?;
        let value = decode_query_part(value, || format!("query parameter {name:?}"))?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

fn decode_query_part(raw: &str, place: impl Fn() -> String) -> Result<String, ApiError> {
    let spaced = raw.replace('+', " ");
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(&spaced).collect();
    let text = String::from_utf8(bytes)
        .map_err(|_| ApiError::BadQuery(format!("{} is not UTF-8 once percent-decoded", place())))?;
    if text.contains('\0') {
        return Err(ApiError::BadQuery(format!("{} {NUL}", place())));
    }
    Ok(text)
}

/// Parse a command body and check every key, string and number in it. Lone surrogates
/// (`"\ud800"`) are not text at all: the parse refuses them as malformed JSON.
pub fn check_body(text: &str) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        if message.contains("escape") || message.contains("surrogate") {
            ApiError::InvalidJson(format!(
                "{message} (a \\u escape is 4 hex digits, and \\uD800 to \\uDFFF only as a surrogate pair)"
            ))
        } else {
            ApiError::InvalidJson(message)
        }
    })?;
    check_value(&value)?;
    Ok(value)
}

/// Walk a JSON value (without recursion: depth is bounded by the parser, but a loop needs no
/// such argument) and refuse the first unstorable key, string or number, naming where it is.
pub fn check_value(value: &Value) -> Result<(), ApiError> {
    let mut pending: Vec<(String, &Value)> = vec![(String::new(), value)];
    while let Some((place, value)) = pending.pop() {
        match value {
            Value::String(s) if s.contains('\0') => {
                return Err(ApiError::Unstorable(format!("{} {NUL}", describe(&place))));
            }
            Value::Number(n) => {
                let text = n.to_string();
                if beyond_i64(&text) {
                    return Err(ApiError::Unstorable(format!(
                        "{} is {text}, beyond the 64-bit integer range, the widest number a read store holds",
                        describe(&place)
                    )));
                }
            }
            Value::Array(items) => {
                pending.extend(items.iter().enumerate().rev().map(|(i, v)| (format!("{place}[{i}]"), v)));
            }
            Value::Object(map) => {
                for (key, v) in map.iter().rev() {
                    let child = if place.is_empty() { key.clone() } else { format!("{place}.{key}") };
                    if key.contains('\0') {
                        return Err(ApiError::Unstorable(format!("the key {} {NUL}", describe(&child))));
                    }
                    pending.push((child, v));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A place in the body for a message: `"holder"`, `"items[2].name"`, or the body itself.
fn describe(place: &str) -> String {
    if place.is_empty() { "the body".to_owned() } else { format!("{place:?}") }
}

/// Whether a JSON number's text (`-12`, `1.5e30`, `0.001`) is outside `i64::MIN..=i64::MAX`.
/// Exact, from the text: no float in between, and extreme exponents saturate.
pub fn beyond_i64(text: &str) -> bool {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().unwrap_or(if e.starts_with('-') { i64::MIN } else { i64::MAX })),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    let significant = digits.trim_start_matches('0');
    if significant.trim_end_matches('0').is_empty() {
        return false;
    }
    // Digits before the decimal point, counted from the first significant one.
    let leading_zeros = (digits.len() - significant.len()) as i64;
    let point = (whole.len() as i64).saturating_sub(leading_zeros).saturating_add(exponent);
    if point <= 0 {
        return false;
    }
    if point > 19 {
        return true;
    }
    // The integer part, padded with zeros when the exponent moves the point past the digits.
    let point = point as usize;
    let integer: String = significant.chars().chain(std::iter::repeat('0')).take(point).collect();
    let has_fraction = significant.len() > point && !significant[point..].trim_end_matches('0').is_empty();
    let Ok(magnitude) = integer.parse::<u64>() else { return true };
    let limit = if negative { 1u64 << 63 } else { (1u64 << 63) - 1 };
    magnitude > limit || (magnitude == limit && has_fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_beyond_i64_are_found_from_their_text() {
        for inside in [
            "0",
            "-0",
            "0.0",
            "12",
            "-12.5",
            "9223372036854775807",
            "-9223372036854775808",
            "9.223372036854775807e18",
            "1e-400",
            "1e18",
            "0.000e999999999999",
            "922337203685477580.7e1",
        ] {
            assert!(!beyond_i64(inside), "{inside} fits");
        }
        for beyond in [
            "9223372036854775808",
            "-9223372036854775809",
            "9223372036854775807.5",
            "1e19",
            "1e400",
            "1E99999999999999999999",
            "100000000000000000000",
            "0.1e20",
        ] {
            assert!(beyond_i64(beyond), "{beyond} does not fit");
        }
    }

    #[test]
    fn nul_is_found_in_keys_and_values_at_any_depth_and_named() {
        let refused = |body: &str| match check_body(body) {
            Err(ApiError::Unstorable(message)) => message,
            other => panic!("{body}: {other:?}"),
        };
        assert_eq!(
            refused(r#"{"holder": "a\u0000b"}"#),
            r#""holder" contains a NUL character (U+0000), which no read store can hold"#
        );
        assert!(refused(r#"{"a": [1, {"b": "\u0000"}]}"#).starts_with(r#""a[1].b" contains"#));
        assert!(refused(r#"{"a": {"k\u0000": 1}}"#).starts_with(r#"the key "a.k\0" contains"#));
        let huge = refused(r#"{"n": [1e30]}"#);
        assert!(huge.starts_with(r#""n[0]" is 1e+30, beyond"#), "{huge}");
        assert!(check_body(r#"{"a": "\u0001 ok", "b": [1.5, -3], "c": null}"#).is_ok());
    }

    #[test]
    fn lone_surrogates_are_malformed_json() {
        for body in [r#"{"a": "\ud800"}"#, r#"{"a": "\udc00x"}"#, r#"{"\ud800": 1}"#] {
            assert!(matches!(check_body(body), Err(ApiError::InvalidJson(_))), "{body}");
        }
        assert!(check_body(r#"{"a": "\ud83d\ude00"}"#).is_ok());
    }

    #[test]
    fn paths_and_queries_must_decode_to_text_without_nul() {
        assert!(check_path("/api/v1/byHolder/John%20Doe").is_ok());
        assert!(check_path("/api/v1/byHolder/%C3%A9").is_ok());
        for bad in ["/api/v1/byHolder/%00", "/a/%ff", "/a/%ed%a0%80", "/a/x%00y"] {
            assert!(matches!(check_path(bad), Err(ApiError::BadPath(_))), "{bad}");
        }
        assert_eq!(
            query_pairs(Some("a=1&b=x+y&&c&d=%C3%A9")).ok(),
            Some(vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), String::new()),
                ("d".into(), "é".into())
            ])
        );
        for bad in ["a=%00", "a=%ff", "%ff=1", "a=%ed%a0%80"] {
            assert!(matches!(query_pairs(Some(bad)), Err(ApiError::BadQuery(_))), "{bad}");
        }
    }
}
