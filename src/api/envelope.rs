//! CKAN's action envelope (`{"help": …, "success": …, "result"|"error": …}`), headers, status
//! codes and JSONP, plus a writer for result objects that splices PostgreSQL's bytes in as they
//! are.

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use serde_json::Value;

use crate::error::ApiError;
use crate::pyjson;

pub const JSON_CONTENT_TYPE: &str = "application/json;charset=utf-8";
const JSONP_CONTENT_TYPE: &str = "application/javascript;charset=utf-8";

/// Builds a JSON object member by member in simplejson's layout.
#[derive(Default)]
pub struct ObjectWriter {
    buf: Vec<u8>,
    members: usize,
}

impl ObjectWriter {
    pub fn new() -> ObjectWriter {
        ObjectWriter::default()
    }

    fn key(&mut self, key: &str) {
        self.buf
            .extend_from_slice(if self.members == 0 { b"{" } else { b", " });
        self.members += 1;
        pyjson::write_str(&mut self.buf, key);
        self.buf.extend_from_slice(b": ");
    }

    /// A member whose value CKAN built in Python.
    pub fn value(&mut self, key: &str, value: &Value) {
        self.key(key);
        pyjson::write_value(&mut self.buf, value);
    }

    /// A member whose value is JSON text produced elsewhere (PostgreSQL), copied verbatim.
    pub fn raw(&mut self, key: &str, json_text: &[u8]) {
        self.key(key);
        self.buf.extend_from_slice(json_text);
    }

    /// A member holding text as a JSON string (ensure_ascii escaping).
    pub fn string(&mut self, key: &str, text: &str) {
        self.key(key);
        pyjson::write_str(&mut self.buf, text);
    }

    pub fn finish(mut self) -> Vec<u8> {
        if self.members == 0 {
            self.buf.push(b'{');
        }
        self.buf.push(b'}');
        self.buf
    }
}

/// Per-request facts the envelope needs.
pub struct Envelope {
    pub help: String,
    /// The JSONP callback, for GET requests that carried one.
    pub callback: Option<String>,
}

fn with_ckan_headers(status: StatusCode, content_type: &str, body: Vec<u8>) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "public, max-age=0, must-revalidate"))
        .insert_header((header::VARY, "Cookie"))
        .body(body)
}

impl Envelope {
    /// `{"help": …, "success": true, "result": <result>}` where `result` is already JSON text.
    pub fn success(&self, result: &[u8]) -> HttpResponse {
        let mut body = Vec::with_capacity(result.len() + self.help.len() + 64);
        body.extend_from_slice(b"{\"help\": ");
        pyjson::write_str(&mut body, &self.help);
        body.extend_from_slice(b", \"success\": true, \"result\": ");
        body.extend_from_slice(result);
        body.push(b'}');
        match &self.callback {
            Some(cb) => {
                let mut wrapped = Vec::with_capacity(body.len() + cb.len() + 3);
                wrapped.extend_from_slice(crate::python::html_escape(cb).as_bytes());
                wrapped.push(b'(');
                wrapped.extend_from_slice(&body);
                wrapped.extend_from_slice(b");");
                with_ckan_headers(StatusCode::OK, JSONP_CONTENT_TYPE, wrapped)
            }
            None => with_ckan_headers(StatusCode::OK, JSON_CONTENT_TYPE, body),
        }
    }

    /// The error response for `err`. JSONP never wraps errors.
    pub fn error(&self, err: &ApiError) -> HttpResponse {
        match err {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error answered with 500")
            }
            ApiError::Unavailable(detail) => {
                tracing::error!(%detail, "access check unavailable: 503")
            }
            ApiError::Upstream {
                content_type, body, ..
            } => {
                return with_ckan_headers(err.status(), content_type, body.to_vec());
            }
            _ => {}
        }
        let body = match (err, err.error_object()) {
            (ApiError::BadRequest(msg), _) => {
                let mut b = Vec::new();
                pyjson::write_str(&mut b, &format!("Bad request: {msg}"));
                b
            }
            (_, Some(obj)) => {
                let mut b = Vec::new();
                b.extend_from_slice(b"{\"help\": ");
                pyjson::write_str(&mut b, &self.help);
                b.extend_from_slice(b", \"error\": ");
                pyjson::write_value(&mut b, &obj);
                b.extend_from_slice(b", \"success\": false}");
                b
            }
            (_, None) => Vec::new(),
        };
        with_ckan_headers(err.status(), JSON_CONTENT_TYPE, body)
    }
}

/// Werkzeug's 415 page, for a POST body that is neither a form nor JSON-typed.
pub fn unsupported_media_type() -> HttpResponse {
    HttpResponse::build(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .body(
            "<!doctype html>\n<html lang=en>\n<title>415 Unsupported Media Type</title>\n\
             <h1>Unsupported Media Type</h1>\n<p>Did not attempt to load JSON data because the \
             request Content-Type was not &#39;application/json&#39;.</p>\n",
        )
}
