//! Every statement of a search, as pure functions of the plan: SQL in the shapes CKAN 2.12
//! generates (`backend/postgres.py::search_data`), so PostgreSQL produces the same bytes in the
//! same row order. Differences from CKAN: values are bind parameters instead of inlined literals
//! (COPY excepted), and the page statement also returns the total and the table's metadata
//! fingerprint, so a request is one round trip. Nothing here reads a cache: what to do about the
//! total is decided beforehand (`TotalSql`, from `totals.rs`). The WHERE clause of `filters`
//! comes from `filters::filter_sql`. The tests at the end pin the SQL of representative plans.

use crate::catalog::ColumnKind;
use crate::error::ApiError;
use crate::search::filters::filter_sql;
use crate::search::params::RecordsFormat;
use crate::search::plan::{Direction, NextPage, Nulls, OrderItem, Output, Plan, TsQuery};
use crate::sql::{ident, Bind, Binder};

/// The FROM list, WHERE, select list and ORDER BY of one search, rendered with one binder.
pub struct Pieces {
    /// `"<table>"` plus the text-search items (`, plainto_tsquery(...) "query"`).
    pub from: String,
    /// `WHERE (...) AND (...)`, or empty.
    pub where_: String,
    /// Select expressions joined as the format wants them (`, ` or ` || ',' || `).
    pub select: String,
    pub order: String,
    pub distinct: bool,
}

impl Pieces {
    pub fn build(plan: &Plan, b: &mut Binder) -> Result<Pieces, ApiError> {
        let needs_lang = !plan.ts_queries.is_empty();
        let lang = if needs_lang {
            b.bind(Bind::Regconfig(plan.language.clone()))
        } else {
            String::new()
        };
        let mut from = ident(&plan.table.id);
        if !plan.ts_queries.is_empty() {
            let func = if plan.plain {
                "plainto_tsquery"
            } else {
                "to_tsquery"
            };
            let items: Vec<String> = plan
                .ts_queries
                .iter()
                .map(|q| {
                    let text = b.bind(Bind::Text(q.text.clone()));
                    format!("{func}({lang}, {text}) {}", ident(&q.alias()))
                })
                .collect();
            from = format!("{from} , {}", items.join(", "));
        }

        let mut clauses = Vec::new();
        if let Some(f) = &plan.filter {
            clauses.push(filter_sql(f, &plan.table, b)?);
        }
        if plan.q_text {
            clauses.push("_full_text @@ \"query\"".to_string());
        }
        for col in &plan.q_columns {
            let alias = ident(&format!("query {col}"));
            let typ = plan
                .table
                .column(col)
                .map(|c| c.typname.as_str())
                .unwrap_or("");
            if !plan.fts_index_types.iter().any(|t| t == typ) {
                clauses.push(format!("_full_text @@ {alias}"));
            }
            clauses.push(format!(
                "to_tsvector({lang}, cast({} as text)) @@ {alias}",
                ident(col)
            ));
        }
        if plan.full_text {
            clauses.push("_full_text @@ \"query\"".to_string());
        }
        let where_ = if clauses.is_empty() {
            String::new()
        } else {
            let wrapped: Vec<String> = clauses.iter().map(|c| format!("({c})")).collect();
            format!("WHERE {}", wrapped.join(" AND "))
        };

        let exprs: Vec<String> = plan
            .outputs
            .iter()
            .map(|o| select_expr(o, plan, &lang))
            .collect();
        let select = if plan.format == RecordsFormat::Lists {
            exprs.join(" || ',' || ")
        } else {
            exprs.join(", ")
        };

        let order_items: Vec<String> = plan
            .order
            .iter()
            .map(|o| match o {
                OrderItem::Column {
                    column,
                    direction,
                    nulls,
                } => {
                    let dir = match direction {
                        Direction::Asc => "asc",
                        Direction::Desc => "desc",
                    };
                    let nulls = match nulls {
                        None => "",
                        Some(Nulls::First) => " nulls first",
                        Some(Nulls::Last) => " nulls last",
                    };
                    format!("{} {dir}{nulls}", ident(column))
                }
                OrderItem::RankDesc(i) => {
                    format!("{} DESC", rank_expression(&plan.ts_queries[*i], &lang))
                }
            })
            .collect();
        let order = if order_items.is_empty() {
            String::new()
        } else {
            format!("ORDER BY {}", order_items.join(", "))
        };
        Ok(Pieces {
            from,
            where_,
            select,
            order,
            distinct: plan.distinct,
        })
    }

    /// `LIMIT n OFFSET m` (integers we parsed, not caller text).
    fn limit_offset(plan: &Plan) -> Result<String, ApiError> {
        match plan.offset {
            Some(offset) => Ok(format!("LIMIT {} OFFSET {}", plan.limit, offset)),
            // CKAN renders `OFFSET None`, which PostgreSQL rejects.
            None => Err(ApiError::invalid_query("column \"none\" does not exist")),
        }
    }

    /// The `records_page` CTE and the clause that follows the select list of the page.
    pub(crate) fn page_parts(&self, plan: &Plan) -> Result<(String, String), ApiError> {
        let lo = Pieces::limit_offset(plan)?;
        if let Some(direction) = deep_id_page(plan, self) {
            // The same rows in the same order as CKAN's `ORDER BY _id LIMIT n OFFSET m` (ids are
            // unique), but the skipped rows are walked in the primary key's index only, and
            // just the page's rows are read from the table (measured 6× faster at offset
            // 900,000 of 1M rows; shared/bench/sql/deep_offset.sql).
            let t = &self.from;
            return Ok((
                format!(
                    "SELECT * FROM {t} WHERE \"_id\" IN (SELECT \"_id\" FROM {t} {order} {lo}) {order}",
                    order = format!("ORDER BY \"_id\" {direction}")
                ),
                String::new(),
            ));
        }
        if self.distinct {
            Ok((
                format!("SELECT * FROM {} {}", self.from, self.where_),
                format!("{} {lo}", self.order),
            ))
        } else {
            Ok((
                format!(
                    "SELECT * FROM {} {} {} {lo}",
                    self.from, self.where_, self.order
                ),
                String::new(),
            ))
        }
    }

    pub(crate) fn distinct_kw(&self) -> &'static str {
        if self.distinct {
            "DISTINCT"
        } else {
            ""
        }
    }
}

/// Pages this deep into a table are found through its primary key first.
pub const DEEP_OFFSET: i64 = 10_000;

/// `Some("asc"|"desc")` when the page is a deep page of the whole table in `_id` order: no
/// filter, no text search, no DISTINCT, sorted by `_id` alone, offset at least `DEEP_OFFSET`.
fn deep_id_page(plan: &Plan, p: &Pieces) -> Option<&'static str> {
    if p.distinct || !p.where_.is_empty() || !plan.ts_queries.is_empty() {
        return None;
    }
    if plan.offset.is_none_or(|o| o < DEEP_OFFSET) {
        return None;
    }
    match plan.order.as_slice() {
        [OrderItem::Column {
            column,
            direction,
            nulls: None,
        }] if column == "_id" => Some(match direction {
            Direction::Asc => "asc",
            Direction::Desc => "desc",
        }),
        _ => None,
    }
}

/// The select expression of one output column for the plan's format (CKAN's per-type formats).
fn select_expr(o: &Output, plan: &Plan, lang: &str) -> String {
    let lists = plan.format == RecordsFormat::Lists;
    let objects = plan.format == RecordsFormat::Objects;
    match o {
        Output::Rank(i) => {
            let q = &plan.ts_queries[*i];
            let rank = rank_expression(q, lang);
            let expr = if lists {
                format!("coalesce(to_json({rank}),'null')")
            } else {
                rank
            };
            format!("{expr} as {}", ident(&q.rank_name()))
        }
        Output::Column { name, kind } => {
            let c = ident(name);
            let ts_format = if plan.ms_in_timestamp {
                "YYYY-MM-DD\"T\"HH24:MI:SS.MS"
            } else {
                "YYYY-MM-DD\"T\"HH24:MI:SS"
            };
            let mut expr = match kind {
                ColumnKind::Nested => format!("coalesce(({c}).json,'null')"),
                ColumnKind::Timestamp => {
                    let tc = format!("to_char({c}, '{ts_format}')");
                    if lists {
                        format!("coalesce(to_json({tc}), 'null')")
                    } else {
                        tc
                    }
                }
                ColumnKind::Array => format!("coalesce(array_to_json({c}),'null')"),
                ColumnKind::Text | ColumnKind::Other if lists => {
                    format!("coalesce(to_json({c}),'null')")
                }
                ColumnKind::Text | ColumnKind::Other => c.clone(),
            };
            if objects {
                expr = format!("{expr} as {c}");
            }
            expr
        }
    }
}

/// The rank expression of a text-search item, given the SQL of the language.
pub fn rank_expression(q: &TsQuery, lang_sql: &str) -> String {
    match &q.column {
        None => format!("ts_rank(_full_text, {}, 32)", ident(&q.alias())),
        Some(c) => format!(
            "ts_rank(to_tsvector({lang_sql}, cast({} as text)), {}, 32)",
            ident(c),
            ident(&q.alias())
        ),
    }
}

/// The two columns that prove the plan's metadata current: the fingerprint of what `requested`
/// names, and the statement's snapshot. While the snapshot is still the one the table's
/// fingerprint was last seen in (`Table::proven_snapshot`), nothing has committed since and the
/// cached fingerprint is returned as it is — the subquery over `pg_catalog` is a lazily run
/// InitPlan, so it costs nothing then; otherwise it is computed afresh.
pub fn metadata_check(plan: &Plan, requested: &str, b: &mut Binder) -> [String; 2] {
    let name = b.bind(Bind::Text(requested.to_string()));
    let snap = b.bind(Bind::Text(plan.table.proven_snapshot()));
    let known = b.bind(Bind::Text(plan.table.fingerprint.clone()));
    [
        format!(
            "CASE WHEN {SNAPSHOT_SQL} = {snap} THEN {known} ELSE {} END",
            crate::catalog::fingerprint_sql(&name)
        ),
        SNAPSHOT_SQL.to_string(),
    ]
}

/// The total's three columns for a statement of its own kind (`datastore_info`'s row count):
/// the count of `plan`, bound in `b` after whatever `b` holds.
pub fn standalone_total_columns(
    plan: &Plan,
    total: &TotalSql,
    b: &mut Binder,
) -> Result<Vec<String>, ApiError> {
    let p = Pieces::build(plan, b)?;
    let mut cols = Vec::new();
    total_columns(plan, &p, b, total, &mut cols);
    Ok(cols)
}

/// The page statement for `objects` / `lists`: one row with the records text, then the next-page
/// id (JSON text) when asked, the total columns when asked (count or NULL, snapshot, marker),
/// and the metadata fingerprint.
pub struct PageStatement {
    pub sql: String,
    // The metadata check's columns: the fingerprint at `fingerprint_col`, the statement's
    // snapshot right after it.
    pub binder: Binder,
    pub next_col: Option<usize>,
    /// First of the three total columns (count or NULL, snapshot, marker).
    pub total_col: Option<usize>,
    pub fingerprint_col: usize,
}

/// What the statement does about the total, decided by the totals cache beforehand
/// (`totals.rs` states the rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TotalSql {
    /// Nothing cached: count, and return the snapshot and (when `with_marker`) the table's
    /// change marker to store with the count.
    Count { with_marker: bool },
    /// A cached total: count only when the statement cannot prove it current — the snapshot is
    /// still `snapshot` (rule 1), or, when `marker` is given, the change marker still equals it
    /// (rule 2).
    Check {
        snapshot: String,
        marker: Option<String>,
        with_marker: bool,
    },
}

/// The total's three columns, appended to `cols`; returns the index of the first.
fn total_columns(
    plan: &Plan,
    p: &Pieces,
    b: &mut Binder,
    total: &TotalSql,
    cols: &mut Vec<String>,
) -> usize {
    let count = format!("({})", count_sql(plan, p));
    let name = b.bind(Bind::Text(plan.table.id.to_string()));
    let with_marker = match total {
        TotalSql::Count { with_marker } | TotalSql::Check { with_marker, .. } => *with_marker,
    };
    // The marker is only worth reading when rule 2 can ever apply (write role configured).
    let marker = if with_marker {
        marker_sql(&name)
    } else {
        "NULL::text".to_string()
    };
    let first = cols.len();
    match total {
        TotalSql::Count { .. } => cols.extend([count, SNAPSHOT_SQL.to_string(), marker]),
        TotalSql::Check {
            snapshot,
            marker: cached_marker,
            ..
        } => {
            let snap = b.bind(Bind::Text(snapshot.clone()));
            let valid = match cached_marker {
                Some(m) => {
                    let mark = b.bind(Bind::Text(m.clone()));
                    format!("{SNAPSHOT_SQL} = {snap} OR {marker} IS NOT DISTINCT FROM {mark}")
                }
                None => format!("{SNAPSHOT_SQL} = {snap}"),
            };
            // Both the count and the marker (stored with a new count) only on a miss.
            cols.extend([
                format!("CASE WHEN {valid} THEN NULL ELSE {count} END"),
                SNAPSHOT_SQL.to_string(),
                format!("CASE WHEN {valid} THEN NULL ELSE {marker} END"),
            ]);
        }
    }
    first
}

/// The page statement for `objects` / `lists`: one row with the records' JSON text, then the
/// next-page id, the total's columns (with `total`), and the fingerprint of what `requested`
/// names.
pub fn page_statement(
    plan: &Plan,
    requested: &str,
    total: Option<&TotalSql>,
) -> Result<PageStatement, ApiError> {
    let mut b = Binder::params();
    let p = Pieces::build(plan, &mut b)?;
    let (records_page, after) = p.page_parts(plan)?;
    let d = p.distinct_kw();
    let mut sql = match plan.format {
        RecordsFormat::Lists => format!(
            "WITH records_page AS ({records_page}), \
             select_cols AS (SELECT {d} '[' || {sel} || ']' v FROM records_page {after}), \
             list_cols AS (SELECT '[' || array_to_string(array_agg(select_cols.v), ',') || ']' lc FROM select_cols) \
             SELECT list_cols.lc",
            sel = p.select
        ),
        _ => format!(
            "WITH records_page AS ({records_page}), \
             select_cols AS (SELECT {d} {sel} FROM records_page {after}), \
             json_cols AS (SELECT array_to_json(array_agg(select_cols))::text j FROM select_cols) \
             SELECT json_cols.j",
            sel = p.select
        ),
    };
    // Column 0 is the records text.
    let mut cols = vec![String::new()];
    let mut next_col = None;
    if let Some(np) = plan.next_page {
        let agg = if np == NextPage::Lt { "min" } else { "max" };
        next_col = Some(cols.len());
        cols.push(format!(
            "(SELECT to_json({agg}(_id))::text FROM records_page)"
        ));
    }
    let total_col = total.map(|t| total_columns(plan, &p, &mut b, t, &mut cols));
    let fingerprint_col = cols.len();
    cols.extend(metadata_check(plan, requested, &mut b));
    for c in &cols[1..] {
        sql.push_str(", ");
        sql.push_str(c);
    }
    let from = if plan.format == RecordsFormat::Lists {
        "list_cols"
    } else {
        "json_cols"
    };
    sql.push_str(&format!(" FROM {from}"));
    Ok(PageStatement {
        sql,
        binder: b,
        next_col,
        total_col,
        fingerprint_col,
    })
}

/// The COPY statement for `csv` / `tsv` (values inlined as escaped literals: COPY takes no
/// parameters).
pub fn copy_statement(plan: &Plan) -> Result<String, ApiError> {
    let mut b = Binder::literals();
    let p = Pieces::build(plan, &mut b)?;
    let (records_page, after) = p.page_parts(plan)?;
    let delimiter = if plan.format == RecordsFormat::Tsv {
        " DELIMITER E'\\t'"
    } else {
        ""
    };
    Ok(format!(
        "COPY (WITH records_page AS ({records_page}) SELECT {d} {sel} FROM records_page {after}) TO STDOUT csv{delimiter}",
        d = p.distinct_kw(),
        sel = p.select
    ))
}

/// The statement that goes with a COPY: next-page id, total and fingerprint, whichever apply.
pub fn copy_companion(
    plan: &Plan,
    requested: &str,
    total: Option<&TotalSql>,
) -> Result<PageStatement, ApiError> {
    let mut b = Binder::params();
    let p = Pieces::build(plan, &mut b)?;
    let mut cols = Vec::new();
    let mut next_col = None;
    if let Some(np) = plan.next_page {
        let agg = if np == NextPage::Lt { "min" } else { "max" };
        let lo = Pieces::limit_offset(plan)?;
        cols.push(format!(
            "(SELECT to_json({agg}(_id))::text FROM (SELECT \"_id\" FROM {} {} {} {lo}) as z)",
            p.from, p.where_, p.order
        ));
        next_col = Some(cols.len() - 1);
    }
    let total_col = total.map(|t| total_columns(plan, &p, &mut b, t, &mut cols));
    let fingerprint_col = cols.len();
    cols.extend(metadata_check(plan, requested, &mut b));
    Ok(PageStatement {
        sql: format!("SELECT {}", cols.join(", ")),
        binder: b,
        next_col,
        total_col,
        fingerprint_col,
    })
}

/// The statement of a `json` or `xml` dump: one row per record, its JSON text (a list for
/// `lists`, an object for `objects`), in page order.
pub fn dump_rows_statement(plan: &Plan) -> Result<(String, Binder), ApiError> {
    let mut b = Binder::params();
    let p = Pieces::build(plan, &mut b)?;
    let (records_page, after) = p.page_parts(plan)?;
    let d = p.distinct_kw();
    let sql = match plan.format {
        RecordsFormat::Lists => format!(
            "WITH records_page AS ({records_page}), \
             select_cols AS (SELECT {d} '[' || {sel} || ']' v FROM records_page {after}) \
             SELECT v FROM select_cols",
            sel = p.select
        ),
        _ => format!(
            "WITH records_page AS ({records_page}), \
             select_cols AS (SELECT {d} {sel} FROM records_page {after}) \
             SELECT to_json(select_cols)::text FROM select_cols",
            sel = p.select
        ),
    };
    Ok((sql, b))
}

/// The count of a search: a scalar subquery (without parentheses). With DISTINCT it counts the
/// distinct select list, as CKAN does; without, the select list cannot change the number of
/// rows, so it is left out (and out of the totals cache key: `fields` and `records_format`
/// share one entry).
pub fn count_sql(plan: &Plan, p: &Pieces) -> String {
    if plan.distinct {
        return format!(
            "SELECT count(*) FROM (SELECT DISTINCT {} FROM {} {}) as t",
            p.select, p.from, p.where_
        );
    }
    format!("SELECT count(*) FROM {} {}", p.from, p.where_)
}

/// The count's text and bind values as they appear inside the page statement: what a cached
/// total is keyed by.
pub fn count_query(plan: &Plan) -> Result<(String, Vec<Bind>), ApiError> {
    let mut b = Binder::params();
    let p = Pieces::build(plan, &mut b)?;
    Ok((count_sql(plan, &p), b.values().to_vec()))
}

/// SQL for the table's change marker (see `totals.rs`), given the SQL of its name.
pub fn marker_sql(table_name_sql: &str) -> String {
    format!(
        "(SELECT c.relfilenode::text || '/' || pg_stat_get_tuples_inserted(c.oid) || '/' || \
         pg_stat_get_tuples_updated(c.oid) || '/' || pg_stat_get_tuples_deleted(c.oid) || '/' || \
         pg_stat_get_live_tuples(c.oid) || '/' || pg_stat_get_analyze_count(c.oid) || '/' || \
         pg_stat_get_autoanalyze_count(c.oid) FROM pg_catalog.pg_class c \
         WHERE c.relnamespace = 'public'::regnamespace AND c.relname = {table_name_sql})"
    )
}

/// The transaction snapshot: equal snapshots mean nothing committed in between.
pub const SNAPSHOT_SQL: &str = "pg_current_snapshot()::text";

/// CKAN's `_table_stats` marker (read with the write role): the version of the table's row, or
/// `absent`.
pub const TSTATS_SQL: &str = "SELECT coalesce((SELECT xmin::text FROM public.\"_table_stats\" \
     WHERE resource_id = $1::text::name), 'absent')";

/// A count on its own (a cached total shown stale after the page statement trusted it):
/// count, snapshot, marker of `table`.
pub fn recount_statement(count: &str, binds: &[Bind], table: &str) -> (String, Binder) {
    let mut b = Binder::params();
    for v in binds {
        b.bind(v.clone());
    }
    let name = b.bind(Bind::Text(table.to_string()));
    let sql = format!("SELECT ({count}), {SNAPSHOT_SQL}, {}", marker_sql(&name));
    (sql, b)
}

/// How to estimate a total (CKAN ≤ 2.11's `total_estimation_threshold`).
pub enum EstimateSql {
    /// One row, one `int8`: `reltuples` of an unfiltered table (CKAN 2.11's
    /// `fast_table_row_count`).
    RelTuples(String, Binder),
    /// `EXPLAIN (FORMAT JSON)` of the count's input: read its top `Plan Rows`.
    Explain(String, Binder),
}

pub fn estimate_statement(plan: &Plan) -> Result<EstimateSql, ApiError> {
    let mut b = Binder::params();
    let p = Pieces::build(plan, &mut b)?;
    if p.where_.is_empty() && !plan.distinct {
        let name = b.bind(Bind::Text(plan.table.id.to_string()));
        let sql = format!(
            "SELECT coalesce((SELECT reltuples::bigint FROM pg_catalog.pg_class \
             WHERE relnamespace = 'public'::regnamespace AND relname = {name}), 0)"
        );
        return Ok(EstimateSql::RelTuples(sql, b));
    }
    let inner = if plan.distinct {
        format!("SELECT DISTINCT {} FROM {} {}", p.select, p.from, p.where_)
    } else {
        format!("SELECT 1 FROM {} {}", p.from, p.where_)
    };
    Ok(EstimateSql::Explain(
        format!("EXPLAIN (FORMAT JSON) {inner}"),
        b,
    ))
}
