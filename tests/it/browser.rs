//! The DataTables view as a person uses it: `tests/browser/datatables.mjs` drives headless
//! Chromium with the DataTables version CKAN 2.12.0 bundles against our server (first draw, a
//! typed search, a two-column sort, the last page), checking what is shown against
//! datastore_search. The screenshot is kept in target/browser/datatables.png.

use crate::harness::{repo_path, SAMPLE};

/// The oracle's default DataTables view on the sample table (access fixtures).
const VIEW: &str = "d7000000-0000-4000-8000-000000000001";

#[tokio::test]
async fn datatables_in_headless_chromium() {
    let app = crate::access::spawn_with_access("", |_| {}).await;
    let shot = repo_path("target/browser/datatables.png");
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    let out = tokio::process::Command::new("node")
        .arg(repo_path("tests/browser/datatables.mjs"))
        .args([app.base.as_str(), VIEW, SAMPLE, shot.to_str().unwrap()])
        .output()
        .await
        .expect("node (scripts/ensure-browser.sh installs it)");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "browser test failed:\n{log}");
    assert!(
        log.contains("ok last page") && log.ends_with("PASS\n"),
        "{log}"
    );
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 1000,
        "no screenshot"
    );
}
