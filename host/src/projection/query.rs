//! Queries: a projection's answer from the tables it serves now, with read-your-writes — a
//! query that names a position waits (bounded) until the projection has applied it.

use std::sync::Arc;

use super::{Projection, ProjectionError, READ_YOUR_WRITES_WAIT, Serving};
use crate::plugin::QueryOutcome;
use crate::read_store::session::SqlSession;

impl Projection {
    /// Answer a query; with `min_position`, first wait (bounded) until the projection has
    /// applied that global position.
    pub async fn query(
        &self,
        name: &str,
        params: Vec<(String, String)>,
        min_position: Option<u64>,
    ) -> Result<QueryOutcome, ProjectionError> {
        if let Some(wanted) = min_position {
            let mut position = self.position.subscribe();
            let reached = tokio::time::timeout(READ_YOUR_WRITES_WAIT, position.wait_for(|p| *p >= wanted)).await;
            if !matches!(reached, Ok(Ok(_))) {
                return Err(ProjectionError::Behind {
                    projection: self.name().to_owned(),
                    at: self.position(),
                    wanted,
                });
            }
        }
        let Serving { plugin, generation } = self.serving();
        let schema = Arc::new(plugin.manifest().schema.clone());
        let session = SqlSession::read(&self.read_store, schema, generation);
        let name = name.to_owned();
        let outcome = tokio::task::spawn_blocking(move || plugin.query(session, &name, &params))
            .await
            .map_err(|e| ProjectionError::Task(e.to_string()))??;
        Ok(outcome)
    }
}
