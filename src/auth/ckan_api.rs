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

/// Carried by every request this server sends to CKAN. A request arriving with it (from any
/// instance: only its presence counts) is one of our probes that came back to us instead of
/// reaching CKAN, and is refused at once (`loop_refusal`), never asked again.
pub const PROBE_HEADER: &str = "x-ckan-datastore-probe";
/// On our refusal of a returned probe, so the instance that sent it knows what happened.
pub const LOOP_HEADER: &str = "x-ckan-datastore-probe-loop";
/// What to fix when a probe comes back to us.
pub const LOOP_FIX: &str = "the URL ckan-datastore asks CKAN at (setting `ckan_api_url`, flag \
     --ckan-api-url, env CKAN_DATASTORE_CKAN_API_URL; default: ckan.site_url) reaches \
     ckan-datastore itself, not CKAN: set it to CKAN's own address (e.g. http://127.0.0.1:5000, \
     where CKAN's uwsgi/gunicorn listens), not the public site URL nginx routes to us";

/// Starts the probe header's value on `doctor`'s routing checks, which send it through the site
/// URL on purpose: the refusal is how an answer shows it came from ckan-datastore, and is
/// logged as the check it is rather than as a loop.
pub const ROUTING_CHECK_PREFIX: &str = "doctor-routing-";

/// Whether an answer came from ckan-datastore: only our refusal of a returned probe carries
/// `LOOP_HEADER` (our other answers look exactly like CKAN's).
pub fn answered_by_us(headers: &reqwest::header::HeaderMap) -> bool {
    headers.contains_key(LOOP_HEADER)
}

/// This process's probe id (the header's value: which instance sent it, for the logs).
pub fn probe_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{:x}-{:x}", std::process::id(), nanos)
    })
}

/// The answer to a request that carries `PROBE_HEADER`: CKAN-shaped JSON, 508 Loop Detected.
pub fn loop_refusal(from: &str, path: &str) -> actix_web::HttpResponse {
    if from.starts_with(ROUTING_CHECK_PREFIX) {
        tracing::info!(probe = %from, %path, "ckan-datastore doctor: this path is routed to us");
    } else {
        tracing::error!(probe = %from, %path, "a probe to CKAN came back to ckan-datastore: {LOOP_FIX}");
    }
    let body = json!({
        "help": "",
        "error": {"__type": "Probe Loop", "message": format!("ckan-datastore probe loop: {LOOP_FIX}")},
        "success": false,
    });
    actix_web::HttpResponse::build(actix_web::http::StatusCode::LOOP_DETECTED)
        .insert_header((LOOP_HEADER, "1"))
        .content_type("application/json;charset=utf-8")
        .body(body.to_string())
}

pub fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        PROBE_HEADER,
        reqwest::header::HeaderValue::from_str(probe_id()).expect("ascii id"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
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
    if answered_by_us(resp.headers()) {
        tracing::error!("access check: the probe came back to ckan-datastore: {LOOP_FIX}");
        return Answer::Unavailable(format!("probe loop: {LOOP_FIX}"));
    }
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

/// The start-up check: does `base` answer as CKAN (`status_show`), not as us? Ok: what CKAN
/// said; Err: what is wrong, naming the setting to fix.
pub async fn check_probe_url(http: &reqwest::Client, base: &str) -> Result<String, String> {
    // The path the probes use first: behind nginx, it is the one routed back to us while
    // `status_show` still reaches CKAN. Without parameters CKAN answers a validation error.
    let probe = format!("{base}/api/3/action/datastore_search");
    if let Ok(r) = http.get(&probe).send().await {
        if answered_by_us(r.headers()) {
            return Err(format!("{probe}: {LOOP_FIX}"));
        }
    }
    let url = format!("{base}/api/3/action/status_show");
    let resp = http.get(&url).send().await.map_err(|e| {
        format!("{url} did not answer ({e}); check `ckan_api_url` (--ckan-api-url)")
    })?;
    if answered_by_us(resp.headers()) {
        return Err(format!("{url}: {LOOP_FIX}"));
    }
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    match body["result"]["ckan_version"].as_str() {
        Some(v) if status == 200 => Ok(format!("{url} answered as CKAN {v}")),
        _ => Err(format!(
            "{url} answered {status}, not as CKAN's status_show; check `ckan_api_url` \
             (--ckan-api-url): it must be CKAN's own address"
        )),
    }
}
