//! Every error page and error body the HTTP surfaces answer, in one place: the action API's
//! JSON envelope (JSONP never wraps errors), the HTML pages CKAN's Flask routes give for dumps
//! and unknown paths, the DataTables view's pages, and Werkzeug's 415. Which `ApiError` means
//! which status is decided in `error.rs`; this module only renders.

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use serde_json::Value;

use crate::error::ApiError;
use crate::pyjson;

use super::envelope::{with_ckan_headers, JSON_CONTENT_TYPE};

/// The action API's error response for `err`, with the action's `help` URL.
pub fn action_error(help: &str, err: &ApiError) -> HttpResponse {
    match err {
        ApiError::Internal(detail) => {
            tracing::error!(%detail, "internal error answered with 500")
        }
        ApiError::CkanCrash(detail) => {
            tracing::info!(%detail, "answered 500 as CKAN does")
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
            pyjson::write_str(&mut b, help);
            b.extend_from_slice(b", \"error\": ");
            pyjson::write_value(&mut b, &obj);
            b.extend_from_slice(b", \"success\": false}");
            b
        }
        (_, None) => Vec::new(),
    };
    let mut resp = with_ckan_headers(err.status(), JSON_CONTENT_TYPE, body);
    if let ApiError::Busy(secs) = err {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(*secs));
    }
    resp
}

/// CKAN's HTML error page (dumps, unknown paths): the status is what clients act on.
pub fn html_page(status: StatusCode, message: &str) -> HttpResponse {
    let title = status.canonical_reason().unwrap_or("Error");
    let mut body = String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head><title>");
    body.push_str(title);
    body.push_str("</title></head>\n<body><h1>");
    body.push_str(title);
    body.push_str("</h1>\n<p>");
    for c in message.chars() {
        match c {
            '&' => body.push_str("&amp;"),
            '<' => body.push_str("&lt;"),
            '>' => body.push_str("&gt;"),
            '\n' => body.push_str("<br>\n"),
            c => body.push(c),
        }
    }
    body.push_str("</p>\n</body>\n</html>\n");
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=0, must-revalidate"))
        .insert_header((header::VARY, "Cookie"))
        .body(body)
}

/// Any other path: a 404 page, as CKAN's router gives.
pub async fn not_found_page() -> HttpResponse {
    html_page(
        StatusCode::NOT_FOUND,
        "The requested URL was not found on the server.",
    )
}

/// Flask's answer to other methods on the dump route.
pub async fn dump_method_not_allowed() -> HttpResponse {
    let mut r = html_page(
        StatusCode::METHOD_NOT_ALLOWED,
        "The method is not allowed for the requested URL.",
    );
    r.headers_mut().insert(
        header::ALLOW,
        header::HeaderValue::from_static("HEAD, OPTIONS, GET"),
    );
    r
}

/// Flask's pages where CKAN's DataTables view crashes: a form key missing
/// (`BadRequestKeyError`: 400), anything else uncaught (500).
pub fn datatables_page(status: StatusCode) -> HttpResponse {
    let title = status.canonical_reason().unwrap_or("Error");
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head><title>{title}</title></head>\n<body><h1>{title}</h1></body>\n</html>\n"
        ))
}

/// The DataTables view's JSON answers (errors included): JSON text returned from a Flask view,
/// hence `text/html`.
pub fn datatables_json(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(pyjson::to_string(body))
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
