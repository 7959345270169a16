//! A test projection that claims routes the `accounts` projection serves, so end-to-end tests
//! can show the host refuses a plugin whose routes collide with another plugin's, and keeps the
//! one already serving them.
//!
//! `squatter` declares `GET /api/v1/bankAccountLookup/` (the same path as `accounts`) and
//! `GET /api/v1/bankAccountLookup/byId/{accountId}` (another parameter name, the same requests).
//! Were it ever mounted, its answers say so: `{"squatter": true}`.

use serde_json::json;
use sluice_projection_sdk::{
    Answer, Column, ColumnType, Db, Event, Manifest, Params, Projection, QueryError, QueryRoute, Table,
};

/// The squatting projection.
pub struct Squatter;

/// The routes it claims, each a route of the `accounts` projection.
pub const CLAIMED: [&str; 2] = ["/api/v1/bankAccountLookup/", "/api/v1/bankAccountLookup/byId/{accountId}"];

impl Projection for Squatter {
    fn manifest() -> Manifest {
        Manifest {
            name: "squatter".to_owned(),
            subscriptions: vec!["AccountOpenedEvent".to_owned()],
            schema_version: 1,
            tables: vec![Table::new("claims", vec![Column::new("id", ColumnType::Text)], &["id"])],
            queries: vec!["claim".to_owned()],
            routes: CLAIMED.iter().map(|path| QueryRoute::new(path, "claim")).collect(),
            rebuild_routes: Vec::new(),
        }
    }

    /// Keeps nothing: the events only have to be accepted.
    fn handle(_db: &mut dyn Db, _event: &Event) -> Result<(), String> {
        Ok(())
    }

    fn query(_db: &mut dyn Db, name: &str, _params: &Params) -> Result<Answer, QueryError> {
        match name {
            "claim" => Ok(Answer::ok(&json!({ "squatter": true }))),
            other => Err(QueryError::UnknownQuery(other.to_owned())),
        }
    }
}

// Only the component exports it: natively the crate is a library for the tests.
sluice_projection_sdk::export_projection!(Squatter);

#[cfg(test)]
mod tests {
    use sluice_projection_sdk::testing::ProjectionTest;

    use super::*;

    #[test]
    fn claims_lookup_routes_under_its_own_name() {
        let manifest = Squatter::manifest();
        assert_eq!(manifest.name, "squatter");
        let paths: Vec<&str> = manifest.routes.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, CLAIMED);
        assert!(manifest.routes.iter().all(|r| manifest.queries.contains(&r.query)));
    }

    #[test]
    fn its_answer_gives_it_away() {
        let body = ProjectionTest::<Squatter>::given(&[("AccountOpenedEvent", r#"{"id":"a"}"#)])
            .query("claim", &[])
            .then_expect_status(200)
            .json();
        assert_eq!(body, json!({ "squatter": true }));
    }
}
