//! The one error type of the HTTP edge: every failure becomes a status and a stable JSON body
//! `{"message": ..., "code": ...}`. Faults of the host or a plugin are logged here with their
//! cause and answered with a generic message.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::admin::AdminError;
use crate::admin::versions::VersionError;
use crate::command::CommandError;
use crate::event_store::EventStoreError;
use crate::plugin::{PluginFault, Refusal, RegistryError};
use crate::projection::ProjectionError;

/// The body of every refusal and failure.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub message: String,
    /// What went wrong, for a program: stable across versions (`invalid_json`, `conflict`, ...).
    pub code: &'static str,
    /// On a version conflict: the version the caller expected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
    /// On a version conflict: the version the stream is at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_version: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or not a JSON object.
    #[error("malformed JSON body: {0}")]
    InvalidJson(String),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("If-Match must be a stream version (a whole number), got {0:?}")]
    BadIfMatch(String),
    #[error("{0}")]
    BadQuery(String),
    /// A path that is not text once percent-decoded, or holds a NUL.
    #[error("{0}")]
    BadPath(String),
    /// A body value no read store can hold (a NUL in text, a number beyond 64 bits).
    #[error("{0}")]
    Unstorable(String),
    #[error("no route for {method} {path}")]
    RouteNotFound { method: String, path: String },
    #[error("{path} does not take {method}")]
    MethodNotAllowed { method: String, path: String },
    #[error("{aggregate_type} {id} has no version {version}")]
    VersionNotFound { aggregate_type: String, id: String, version: u64 },
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("projection {projection} has no query {query:?}")]
    UnknownQuery { projection: String, query: String },
    #[error("{0}")]
    InvalidQuery(String),
    #[error("{0}")]
    QueryNotFound(String),
    #[error("query failed: {0}")]
    QueryFailed(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("this host runs no admin service")]
    AdminUnavailable,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            Self::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::BadIfMatch(_) => (StatusCode::BAD_REQUEST, "bad_if_match"),
            Self::BadQuery(_) => (StatusCode::BAD_REQUEST, "bad_query"),
            Self::BadPath(_) => (StatusCode::BAD_REQUEST, "bad_path"),
            Self::Unstorable(_) => (StatusCode::BAD_REQUEST, "unstorable_value"),
            Self::RouteNotFound { .. } => (StatusCode::NOT_FOUND, "route_not_found"),
            Self::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::VersionNotFound { .. } => (StatusCode::NOT_FOUND, "version_not_found"),
            Self::UnknownQuery { .. } => (StatusCode::NOT_FOUND, "unknown_query"),
            Self::InvalidQuery(_) => (StatusCode::BAD_REQUEST, "invalid_query"),
            Self::QueryNotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::QueryFailed(_) => (StatusCode::INTERNAL_SERVER_ERROR, "query_failed"),
            Self::AdminUnavailable => (StatusCode::FORBIDDEN, "admin_disabled"),
            Self::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::Admin(e) => match e {
                AdminError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "plugin_refused"),
                AdminError::Conflict(RegistryError::NotLoaded { .. }) => (StatusCode::NOT_FOUND, "unknown_plugin"),
                AdminError::Conflict(_) => (StatusCode::CONFLICT, "plugin_conflict"),
                AdminError::WrongName { .. } => (StatusCode::BAD_REQUEST, "wrong_plugin_name"),
                AdminError::UnknownPlugin(_) => (StatusCode::NOT_FOUND, "unknown_plugin"),
                AdminError::UnknownVersion { .. } => (StatusCode::NOT_FOUND, "unknown_version"),
                AdminError::Busy(_) => (StatusCode::CONFLICT, "plugin_busy"),
                AdminError::RebuildRunning(_) => (StatusCode::CONFLICT, "rebuild_running"),
                AdminError::UnknownLetter(_) | AdminError::UnknownDeliveryLetter(_) => {
                    (StatusCode::NOT_FOUND, "unknown_dead_letter")
                }
                AdminError::NotParked { .. } => (StatusCode::CONFLICT, "dead_letter_not_parked"),
                AdminError::Unreadable { .. } => (StatusCode::CONFLICT, "unreadable_events"),
                AdminError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "event_store_unavailable"),
                AdminError::Projection(ProjectionError::Unknown(_)) => (StatusCode::NOT_FOUND, "unknown_projection"),
                AdminError::Projection(ProjectionError::NotReplayable(_)) => (StatusCode::CONFLICT, "not_replayable"),
                AdminError::UngrantedChannel { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "channel_not_granted"),
                AdminError::NotAReactor(_) => (StatusCode::NOT_FOUND, "unknown_reactor"),
                AdminError::UnknownMessage { .. } => (StatusCode::NOT_FOUND, "unknown_message"),
                AdminError::MessageNotParked { .. } => (StatusCode::CONFLICT, "message_not_parked"),
                AdminError::Outbox(_) => (StatusCode::SERVICE_UNAVAILABLE, "read_store_unavailable"),
                AdminError::Versions(VersionError::InvalidPluginName(_)) => {
                    (StatusCode::BAD_REQUEST, "invalid_plugin_name")
                }
                AdminError::Versions(VersionError::InvalidSha256(_)) => (StatusCode::BAD_REQUEST, "invalid_sha256"),
                AdminError::Versions(_) | AdminError::Projection(_) | AdminError::File { .. } | AdminError::Task(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal")
                }
            },
            Self::Projection(e) => match e {
                ProjectionError::Unknown(_) => (StatusCode::NOT_FOUND, "unknown_projection"),
                ProjectionError::Behind { .. } => (StatusCode::SERVICE_UNAVAILABLE, "projection_behind"),
                ProjectionError::Fault(fault) => fault_code(fault),
                ProjectionError::NotReplayable(_) => (StatusCode::CONFLICT, "not_replayable"),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
            Self::Command(e) => match e {
                CommandError::UnknownAggregateType(_) => (StatusCode::NOT_FOUND, "unknown_aggregate_type"),
                CommandError::UnknownCommand { .. } => (StatusCode::NOT_FOUND, "unknown_command"),
                CommandError::AggregateNotFound { .. } => (StatusCode::NOT_FOUND, "aggregate_not_found"),
                CommandError::InvalidId(_) => (StatusCode::BAD_REQUEST, "invalid_id"),
                CommandError::Refused(Refusal::Invalid(_)) => (StatusCode::BAD_REQUEST, "invalid_command"),
                CommandError::Refused(Refusal::Rejected(_)) => (StatusCode::BAD_REQUEST, "rejected"),
                CommandError::Refused(Refusal::NotFound(_)) => (StatusCode::NOT_FOUND, "not_found"),
                CommandError::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
                CommandError::Fault(PluginFault::Trapped { .. }) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "plugin_trapped")
                }
                CommandError::Fault(PluginFault::Timeout { .. }) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "plugin_timeout")
                }
                CommandError::Fault(PluginFault::OutOfMemory { .. }) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "plugin_out_of_memory")
                }
                CommandError::Fault(PluginFault::Contract { .. }) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "plugin_fault")
                }
                CommandError::Store(EventStoreError::Conflict { .. }) => (StatusCode::CONFLICT, "conflict"),
                CommandError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
        }
    }

    /// What the caller is told. Faults get a generic message; the cause goes to the log.
    fn public_message(&self) -> String {
        match self {
            Self::Command(CommandError::Fault(fault)) | Self::Projection(ProjectionError::Fault(fault)) => {
                match fault {
                    PluginFault::Trapped { .. } => "the plugin failed while handling the request".into(),
                    PluginFault::Timeout { .. } => "the plugin ran past its time limit".into(),
                    PluginFault::OutOfMemory { .. } => "the plugin ran out of memory".into(),
                    PluginFault::Contract { .. } => "the plugin returned something the host cannot accept".into(),
                }
            }
            Self::QueryFailed(_) => "the query failed".into(),
            Self::Projection(
                ProjectionError::Unknown(_) | ProjectionError::Behind { .. } | ProjectionError::NotReplayable(_),
            ) => self.to_string(),
            Self::Projection(_) => "internal error".into(),
            Self::Command(CommandError::Store(EventStoreError::Conflict { .. }))
            | Self::Command(CommandError::Conflict { .. }) => self.to_string(),
            Self::Command(CommandError::Store(_)) => "internal error".into(),
            Self::Admin(
                AdminError::Versions(_)
                | AdminError::Projection(_)
                | AdminError::File { .. }
                | AdminError::Task(_)
                | AdminError::Outbox(_)
                | AdminError::Store(_),
            ) if self.status_and_code().0.is_server_error() => "internal error".into(),
            other => other.to_string(),
        }
    }
}

fn fault_code(fault: &PluginFault) -> (StatusCode, &'static str) {
    let code = match fault {
        PluginFault::Trapped { .. } => "plugin_trapped",
        PluginFault::Timeout { .. } => "plugin_timeout",
        PluginFault::OutOfMemory { .. } => "plugin_out_of_memory",
        PluginFault::Contract { .. } => "plugin_fault",
    };
    (StatusCode::INTERNAL_SERVER_ERROR, code)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(code, "request failed: {self}");
        }
        let mut body = ErrorBody { message: self.public_message(), code, expected_version: None, actual_version: None };
        if let Self::Command(CommandError::Conflict { expected, actual, .. }) = &self {
            body.expected_version = Some(*expected);
            body.actual_version = Some(*actual);
        }
        let mut response = (status, Json(body)).into_response();
        if matches!(self, Self::PayloadTooLarge { .. }) {
            // The unread rest of the body is still on the wire: the connection cannot be reused,
            // and saying so keeps the client from sending its next request into it.
            response
                .headers_mut()
                .insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        }
        response
    }
}
