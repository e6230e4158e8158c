//! Strategy B (docs/ckan-spec/ckan-auth.md §6.2): ask CKAN itself, with the caller's credentials, a request
//! whose authorization path is the same as the original's but which costs CKAN nothing
//! (`limit: 0`, no total, no metadata). Fails closed: no answer from CKAN is never a "yes".

use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use super::credentials::Presented;
use super::Endpoint;

/// What CKAN said.
#[derive(Debug, Clone)]
pub enum Answer {
    Allowed,
    /// CKAN refused: its status, content type and body, to be passed on as they are.
    Refused {
        status: u16,
        content_type: String,
        body: Bytes,
    },
    /// No usable answer (CKAN down, timed out, or a status we cannot interpret).
    Unavailable(String),
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client with default TLS")
}

/// Sends the probe for `kind` on the resource `id` (as the caller sent it).
pub async fn ask(
    http: &reqwest::Client,
    base: &str,
    kind: Endpoint,
    id: &str,
    p: &Presented,
) -> Answer {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let (mut req, is_dump) = match kind {
        Endpoint::Dump => (
            http.get(format!(
                "{base}/datastore/dump/{}?limit=0",
                enc(id).replace('+', "%20")
            )),
            true,
        ),
        Endpoint::Search | Endpoint::Info | Endpoint::Sql => {
            // A table of a SQL query is judged as `resource_show` on that id, which a search
            // of the same id asks too (an alias passes here, but has no resource row: 404).
            let (action, body) = match kind {
                Endpoint::Search | Endpoint::Sql => (
                    "datastore_search",
                    json!({"resource_id": id, "limit": 0, "include_total": false}),
                ),
                _ => (
                    "datastore_info",
                    json!({"id": id, "include_meta": false, "include_fields_schema": false}),
                ),
            };
            let url = format!("{base}/api/3/action/{action}");
            // The same method as the caller's, so CKAN's CSRF rules for cookie POSTs apply.
            let req = if p.post {
                http.post(url).json(&body)
            } else {
                let qs: String = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(body.as_object().into_iter().flatten().map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_string),
                        )
                    }))
                    .finish();
                http.get(format!("{url}?{qs}"))
            };
            (req, false)
        }
    };
    // A `callback` made the caller anonymous: send no credentials at all.
    if !p.anonymous {
        for (k, v) in &p.forward {
            req = req.header(k.as_str(), v.as_str());
        }
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return Answer::Unavailable(format!("CKAN did not answer: {e}")),
    };
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    match status {
        200 => Answer::Allowed,
        // The dump hides what it refuses: its 403s are already 404s, and its 500s (orphan
        // tables) are 404s for us too.
        404 | 500 if is_dump => Answer::Refused {
            status: 404,
            content_type,
            body: Bytes::new(),
        },
        400 | 403 | 404 => match resp.bytes().await {
            Ok(body) => Answer::Refused {
                status,
                content_type,
                body,
            },
            Err(e) => Answer::Unavailable(format!("CKAN's answer was cut: {e}")),
        },
        s => Answer::Unavailable(format!("CKAN answered {s}")),
    }
}
