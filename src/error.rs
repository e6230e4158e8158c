//! Every error the API can answer, and the one table that turns each into CKAN's status code and
//! error body (`ckan/views/api.py`). Database errors are logged with their SQL and answered
//! without it.

use actix_web::http::StatusCode;
use serde_json::{json, Map, Value};

/// An API failure, rendered as CKAN renders the matching Python exception.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `ValidationError`: HTTP 409, the dict of messages plus `"__type": "Validation Error"`.
    #[error("validation error: {0:?}")]
    Validation(Map<String, Value>),
    /// `NotFound`: HTTP 404, `"Not found: <msg>"` (or `"Not found"` with no message).
    #[error("not found: {0:?}")]
    NotFound(Option<String>),
    /// `NotAuthorized`: HTTP 403, `"Access denied: <msg>"`.
    #[error("access denied: {0:?}")]
    Forbidden(Option<String>),
    /// Request data that CKAN rejects before the action runs: HTTP 400 with a bare JSON string.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// An unexpected failure (CKAN: an uncaught exception in the action): HTTP 500. The detail
    /// is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
    /// CKAN's own refusal from a delegated access check, passed on verbatim.
    #[error("refused by CKAN with {status}")]
    Upstream {
        status: u16,
        content_type: String,
        body: bytes::Bytes,
    },
    /// Access could not be checked (CKAN or its database unreachable): 503, never a "yes".
    /// The detail is logged, never sent.
    #[error("access check unavailable: {0}")]
    Unavailable(String),
}

impl ApiError {
    /// A validation error with one key and one message, the commonest shape.
    pub fn field(key: &str, message: impl Into<String>) -> ApiError {
        let mut m = Map::new();
        m.insert(key.into(), json!([message.into()]));
        ApiError::Validation(m)
    }

    /// CKAN's backend "invalid value" error for one parameter.
    pub fn invalid_value(key: &str, shown: &str) -> ApiError {
        ApiError::field(key, format!("invalid value \"{shown}\""))
    }

    /// The error CKAN gives when PostgreSQL rejects a generated search statement. CKAN adds an
    /// `info` object holding the SQL text; we keep the database's own message and drop the SQL.
    pub fn invalid_query(db_message: &str) -> ApiError {
        let mut m = Map::new();
        m.insert("query".into(), json!(["Invalid query"]));
        m.insert("info".into(), json!({"orig": [db_message]}));
        ApiError::Validation(m)
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::CONFLICT,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Upstream { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `error` object of the envelope, or `None` when CKAN answers a bare string instead.
    pub fn error_object(&self) -> Option<Value> {
        let mut m = Map::new();
        match self {
            ApiError::Validation(fields) => {
                for (k, v) in fields {
                    m.insert(k.clone(), v.clone());
                }
                m.insert("__type".into(), json!("Validation Error"));
            }
            ApiError::NotFound(msg) => {
                m.insert("__type".into(), json!("Not Found Error"));
                m.insert("message".into(), json!(prefixed("Not found", msg)));
            }
            ApiError::Forbidden(msg) => {
                m.insert("__type".into(), json!("Authorization Error"));
                m.insert("message".into(), json!(prefixed("Access denied", msg)));
            }
            ApiError::Internal(_) => {
                m.insert("__type".into(), json!("Internal Server Error"));
                m.insert("message".into(), json!("Internal Server Error"));
            }
            ApiError::Unavailable(_) => {
                m.insert("__type".into(), json!("Service Unavailable"));
                m.insert(
                    "message".into(),
                    json!("Access to this resource cannot be checked right now"),
                );
            }
            ApiError::BadRequest(_) | ApiError::Upstream { .. } => return None,
        }
        Some(Value::Object(m))
    }
}

fn prefixed(prefix: &str, msg: &Option<String>) -> String {
    match msg {
        Some(m) if !m.is_empty() => format!("{prefix}: {m}"),
        _ => prefix.to_string(),
    }
}

/// What went wrong talking to PostgreSQL, classified the way CKAN's search classifies it.
pub fn from_db_error(err: &tokio_postgres::Error, sql: &str) -> ApiError {
    use tokio_postgres::error::SqlState;
    match err.as_db_error() {
        Some(db) if *db.code() == SqlState::QUERY_CANCELED => {
            tracing::info!(sql, "search cancelled by statement timeout");
            ApiError::field("query", "Search took too long")
        }
        Some(db) if *db.code() == SqlState::UNDEFINED_TABLE => {
            tracing::info!(sql, error = %db.message(), "table vanished");
            ApiError::NotFound(None)
        }
        Some(db) => {
            tracing::info!(sql, error = %db.message(), code = db.code().code(), "invalid query");
            ApiError::invalid_query(db.message())
        }
        None => {
            tracing::error!(sql, error = %err, "database failure");
            ApiError::Internal(err.to_string())
        }
    }
}
