//! The id of a comment: a UUID, written as the seed wrote its `Guid`s.
//!
//! The seed read comment ids with System.Text.Json, which takes a `Guid` only in its hyphenated
//! form (`3fa85f64-5717-4562-b3fc-2c963f66afa6`) and in either case of hex digits. A
//! [`CommentId`] accepts the same texts and keeps them in lower case, so `3FA85F64-…` and
//! `3fa85f64-…` name the same comment, as they did in the seed. Anything else in a request is
//! invalid input rather than a comment that cannot be found.

use std::fmt;
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

/// A comment's UUID, lower case, hyphenated: `3fa85f64-5717-4562-b3fc-2c963f66afa6`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct CommentId(String);

impl CommentId {
    /// Offsets of the hyphens in the 36 characters of a hyphenated UUID.
    const HYPHENS: [usize; 4] = [8, 13, 18, 23];

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a text is not a comment id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentIdError(pub String);

impl fmt::Display for CommentIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a comment id: expected a UUID such as 3fa85f64-5717-4562-b3fc-2c963f66afa6", self.0)
    }
}

impl std::error::Error for CommentIdError {}

impl FromStr for CommentId {
    type Err = CommentIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let well_formed = text.len() == 36
            && text
                .bytes()
                .enumerate()
                .all(|(i, byte)| if CommentId::HYPHENS.contains(&i) { byte == b'-' } else { byte.is_ascii_hexdigit() });
        if !well_formed {
            return Err(CommentIdError(text.to_owned()));
        }
        Ok(CommentId(text.to_ascii_lowercase()))
    }
}

impl fmt::Display for CommentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl schemars::JsonSchema for CommentId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CommentId".into()
    }

    /// What [`Deserialize`] reads: a string holding a hyphenated UUID.
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "uuid",
            "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        })
    }
}

impl<'de> Deserialize<'de> for CommentId {
    /// Only a JSON string holding a hyphenated UUID is a comment id.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hyphenated_uuids_in_either_case_and_keeps_them_lower_case() {
        let lower: Result<CommentId, _> = "3fa85f64-5717-4562-b3fc-2c963f66afa6".parse();
        let upper: Result<CommentId, _> = "3FA85F64-5717-4562-B3FC-2C963F66AFA6".parse();
        assert_eq!(lower.as_ref().map(CommentId::as_str), Ok("3fa85f64-5717-4562-b3fc-2c963f66afa6"));
        assert_eq!(lower, upper);
    }

    #[test]
    fn refuses_every_other_text() {
        for text in [
            "",
            "3fa85f64571745 62b3fc2c963f66afa6",
            "3fa85f6457174562b3fc2c963f66afa6",
            "{3fa85f64-5717-4562-b3fc-2c963f66afa6}",
            " 3fa85f64-5717-4562-b3fc-2c963f66afa6",
            "3fa85f64-5717-4562-b3fc-2c963f66afag",
            "3fa85f64-5717-4562-b3fc-2c963f66afa6-",
            "3fa85f645-717-4562-b3fc-2c963f66afa6",
            "3fa85f64-5717-4562-b3fc-2c963f66afé",
        ] {
            assert_eq!(text.parse::<CommentId>(), Err(CommentIdError(text.to_owned())), "{text:?}");
        }
    }

    #[test]
    fn is_a_json_string_both_ways() {
        let id: Result<CommentId, _> = serde_json::from_str(r#""3FA85F64-5717-4562-B3FC-2C963F66AFA6""#);
        assert_eq!(
            id.ok().and_then(|id| serde_json::to_string(&id).ok()).as_deref(),
            Some(r#""3fa85f64-5717-4562-b3fc-2c963f66afa6""#)
        );
        assert!(serde_json::from_str::<CommentId>("42").is_err());
    }
}
