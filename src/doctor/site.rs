//! The HTTP side: the probe URL must be CKAN itself (the start-up check of `serve`, reused),
//! and the site URL must send each path we serve to us and the rest to CKAN.

use super::report::Check;
use crate::api::{CKAN_ONLY_PATH, SERVED_PATHS};
use crate::auth::ckan_api::{
    answered_by_us, check_probe_url, client, probe_id, PROBE_HEADER, ROUTING_CHECK_PREFIX,
};
use crate::auth::config::AccessMode;
use crate::config::Settings;

/// `ckan_api_url`: where cookie callers (and, with plugins or `ckan-api`, every caller) are
/// asked of CKAN must answer as CKAN, not as us.
pub async fn probe_url(settings: &Settings) -> Check {
    const NAME: &str = "ckan_api_url";
    if settings.access.mode == AccessMode::Public {
        return Check::skip(NAME, "access control is public: CKAN is never asked");
    }
    let Some(base) = &settings.access.ckan_api_url else {
        return Check::skip(NAME, "not set");
    };
    match check_probe_url(&client(), base).await {
        Ok(what) => Check::ok(NAME, what),
        Err(why) => Check::fail(
            NAME,
            why,
            "set `ckan_api_url` to CKAN's own address (where its uwsgi/gunicorn listens), \
             not the public site URL",
        ),
    }
}

/// What a status from something other than us suggests.
fn hint(status: u16, location: Option<&str>, settings: &Settings) -> String {
    match (status, location) {
        (301 | 302 | 307 | 308, Some(to)) => {
            format!(" (a redirect to {to}: ckan.site_url should be the URL clients end up at)")
        }
        (502..=504, _) => format!(
            " (nginx could not reach its upstream: is ckan-datastore running on {}, as \
             ckan-datastore-upstream.conf says?)",
            settings.listen
        ),
        _ => String::new(),
    }
}

/// `ckan.site_url`: one line per path we serve (answered by us?) and one for CKAN's own.
///
/// Each request carries the probe header on purpose: only ckan-datastore refuses it, with
/// `LOOP_HEADER`, so the refusal says which server answered whatever the path's parameters.
pub async fn routing(settings: &Settings) -> Vec<Check> {
    let http = client();
    let mark = format!("{ROUTING_CHECK_PREFIX}{}", probe_id());
    let site = &settings.site_url;
    let fix_site = "ckan.site_url (--site-url) must be the site's public URL, reachable from here";
    let mut checks = Vec::new();
    for path in SERVED_PATHS.iter().copied().chain([CKAN_ONLY_PATH]) {
        let name = format!("route {path}");
        let ours = path != CKAN_ONLY_PATH;
        let url = format!("{site}{path}");
        let resp = match http.get(&url).header(PROBE_HEADER, &mark).send().await {
            Err(e) => {
                checks.push(Check::fail(
                    name,
                    format!("{url}: no answer ({e})"),
                    fix_site,
                ));
                continue;
            }
            Ok(r) => r,
        };
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        checks.push(match (ours, answered_by_us(resp.headers())) {
            (true, true) => Check::ok(name, format!("{url}: answered by ckan-datastore")),
            (true, false) => Check::fail(
                name,
                format!(
                    "{url}: answered {status} by another server (CKAN?){}",
                    hint(status, location.as_deref(), settings)
                ),
                "include ckan-datastore-locations.conf in the CKAN site's server { } and \
                 ckan-datastore-upstream.conf in http { }, then reload nginx",
            ),
            (false, true) => Check::fail(
                name,
                format!("{url}: answered by ckan-datastore, but this path is CKAN's"),
                "route only the locations of ckan-datastore-locations.conf to ckan-datastore, \
                 everything else to CKAN",
            ),
            (false, false) => Check::ok(name, format!("{url}: answered {status} by CKAN's side")),
        });
    }
    checks
}
