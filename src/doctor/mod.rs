//! `ckan-datastore doctor`: each setting checked against the real site, one line per check
//! with what was found and the fix, for an operator before (and after) routing traffic to us.
//! It takes the same configuration as `serve` and reaches everything the way `serve` would:
//! the same pools, the same start-up probe check, the same marker of our answers.
//!
//! `databases` (read role read-only, write role, CKAN's main database role and its columns),
//! `site` (the probe URL is CKAN, the site URL routes each path we serve to us), `ini`
//! (plugins that change access, ini keys we do not honour); `report` prints them.

mod databases;
mod ini;
pub mod report;
mod site;

pub use report::{passed, render, Check, Status};

use crate::config::{CkanIni, Settings};

/// Every check, in the report's order (network checks run concurrently).
pub async fn run(settings: &Settings, ini: &CkanIni) -> Vec<Check> {
    let (read, limits, write, main, probe, routes) = futures_util::join!(
        databases::read_url(settings),
        databases::read_role_limits(settings),
        databases::write_url(settings),
        databases::ckan_db_url(settings),
        site::probe_url(settings),
        site::routing(settings),
    );
    let mut checks = vec![
        read,
        limits,
        write,
        main,
        probe,
        ini::plugins(settings, ini),
    ];
    checks.extend(ini::unhonoured_keys(ini));
    checks.extend(routes);
    checks
}
