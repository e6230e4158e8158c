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
    /// An unexpected failure of ours: HTTP 500. The detail is logged as an error, never sent.
    #[error("internal error: {0}")]
    Internal(String),
    /// Where CKAN itself crashes (an uncaught exception in its action for this input) we answer
    /// the same 500 on purpose; logged as CKAN behaviour, not as our fault.
    #[error("CKAN answers 500 here: {0}")]
    CkanCrash(String),
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
    /// Too busy to run this now (no connection within the bounded wait): 503 with
    /// `Retry-After: <seconds>`, in CKAN's error shape.
    #[error("busy: retry after {0} s")]
    Busy(u32),
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
            ApiError::Internal(_) | ApiError::CkanCrash(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Upstream { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            ApiError::Unavailable(_) | ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
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
            ApiError::Internal(_) | ApiError::CkanCrash(_) => {
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
            ApiError::Busy(_) => {
                m.insert("__type".into(), json!("Service Unavailable"));
                m.insert(
                    "message".into(),
                    json!("Too many queries are running: try again later"),
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

/// A database error, classified once for every path (search, info, dump, SQL search); each path
/// then answers its class as CKAN does there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorClass {
    /// `57014`: the statement timeout fired (or a cancel we sent).
    Cancelled,
    /// `42P01`: the table vanished between metadata and statement.
    UndefinedTable,
    /// `42501`: the role may not read something the statement names.
    InsufficientPrivilege,
    /// Any other SQLSTATE of class 42: PostgreSQL rejected the statement as written.
    Rejected,
    /// `53400`: the statement hit a limit the server is configured with (`temp_file_limit`).
    ConfigurationLimit,
    /// Any other error PostgreSQL reported (data errors, server shutting down, …).
    OtherServerError,
    /// No answer from PostgreSQL at all: the connection failed or closed.
    Connection,
}

/// The class of `err` and PostgreSQL's own message (without SQL text).
pub fn classify_db_error(err: &tokio_postgres::Error) -> (DbErrorClass, String) {
    use tokio_postgres::error::SqlState;
    let Some(db) = err.as_db_error() else {
        return (DbErrorClass::Connection, err.to_string());
    };
    let code = db.code();
    let class = if *code == SqlState::QUERY_CANCELED {
        DbErrorClass::Cancelled
    } else if *code == SqlState::UNDEFINED_TABLE {
        DbErrorClass::UndefinedTable
    } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        DbErrorClass::InsufficientPrivilege
    } else if *code == SqlState::CONFIGURATION_LIMIT_EXCEEDED {
        DbErrorClass::ConfigurationLimit
    } else if code.code().starts_with("42") {
        DbErrorClass::Rejected
    } else {
        DbErrorClass::OtherServerError
    };
    (class, db.message().to_string())
}

/// What went wrong talking to PostgreSQL, answered the way CKAN's search answers it; `sql` is
/// logged, never sent.
pub fn from_db_error(err: &tokio_postgres::Error, sql: &str) -> ApiError {
    let (class, message) = classify_db_error(err);
    match class {
        DbErrorClass::Cancelled => {
            tracing::info!(sql, "search cancelled by statement timeout");
            ApiError::field("query", "Search took too long")
        }
        DbErrorClass::UndefinedTable => {
            tracing::info!(sql, error = %message, "table vanished");
            ApiError::NotFound(None)
        }
        DbErrorClass::Connection => {
            tracing::error!(sql, error = %err, "database failure");
            ApiError::Internal(message)
        }
        _ => {
            let code = err.as_db_error().map(|d| d.code().code()).unwrap_or("");
            tracing::info!(sql, error = %message, code, "invalid query");
            ApiError::invalid_query(&message)
        }
    }
}
