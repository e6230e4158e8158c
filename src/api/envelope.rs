//! CKAN's action envelope (`{"help": …, "success": …, "result"|"error": …}`), headers, status
//! codes and JSONP. Result objects themselves are written by `object_writer`.

use crate::pyjson;
use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;

pub const JSON_CONTENT_TYPE: &str = "application/json;charset=utf-8";
const JSONP_CONTENT_TYPE: &str = "application/javascript;charset=utf-8";

/// Per-request facts the envelope needs.
pub struct Envelope {
    pub help: String,
    /// The JSONP callback, for GET requests that carried one.
    pub callback: Option<String>,
}

pub(super) fn with_ckan_headers(
    status: StatusCode,
    content_type: &str,
    body: Vec<u8>,
) -> HttpResponse {
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
}
