//! The one access check every read path goes through.

use std::future::Future;

use crate::auth::credentials::Presented;
use crate::auth::{gate, Access, Denial, Endpoint};
use crate::catalog::TableId;

/// Runs `work` on `table` (the real table behind `requested`, which the caller resolved first:
/// CKAN answers 404 before 403) while `access` decides whether `who` may use `endpoint` on it,
/// and releases the work's result only once the answer is yes; on no, `work` is dropped at once
/// (it must cancel its query when dropped, see `db::CancelOnDrop`). `work` reports the table it
/// actually read: when an alias was retargeted in the meantime, that table is checked too.
///
/// The outer error is the refusal and the table it is about.
pub async fn read_checked<T, E>(
    access: &Access,
    who: &Presented,
    requested: &str,
    table: &TableId,
    endpoint: Endpoint,
    work: impl Future<Output = Result<(T, TableId), E>>,
) -> Result<Result<T, E>, (Denial, TableId)> {
    if access.is_public() {
        return Ok(work.await.map(|(out, _)| out));
    }
    let verdict = access.decide(who, table, requested, endpoint);
    let (out, served) = match gate(verdict, work).await {
        Err(denial) => return Err((denial, table.clone())),
        Ok(Err(e)) => return Ok(Err(e)),
        Ok(Ok(done)) => done,
    };
    if served != *table {
        access
            .decide(who, &served, requested, endpoint)
            .await
            .map_err(|d| (d, served.clone()))?;
    }
    Ok(Ok(out))
}
