//! SQL for a search plan, in the shapes CKAN 2.12 generates (`backend/postgres.py::search_data`),
//! so PostgreSQL produces the same bytes in the same row order. Differences from CKAN: values are
//! bind parameters instead of inlined literals (COPY excepted), and the page statement also
//! returns the total and the table's metadata fingerprint, so a request is one round trip.

use serde_json::Value;

use crate::error::ApiError;
use crate::pyjson;
use crate::search::filters::{FilterOp, FilterValue};
use crate::search::params::RecordsFormat;
use crate::search::plan::{NextPage, OrderItem, Output, Plan};
use crate::search::totals::{TotalPlan, TotalsCache};
use crate::sql::{ident, rank_expression_with, Bind, Binder};

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
            clauses.push(filter_clause(f, plan, b)?);
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
                OrderItem::Clause(c) => c.clone(),
                OrderItem::RankDesc(i) => {
                    format!("{} DESC", rank_expression_with(&plan.ts_queries[*i], &lang))
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

/// The select expression of one output column for the plan's format (CKAN's per-type formats).
fn select_expr(o: &Output, plan: &Plan, lang: &str) -> String {
    let lists = plan.format == RecordsFormat::Lists;
    let objects = plan.format == RecordsFormat::Objects;
    match o {
        Output::Rank(i) => {
            let q = &plan.ts_queries[*i];
            let rank = rank_expression_with(q, lang);
            let expr = if lists {
                format!("coalesce(to_json({rank}),'null')")
            } else {
                rank
            };
            format!("{expr} as {}", ident(&q.rank_name()))
        }
        Output::Column { name, typname } => {
            let c = ident(name);
            let ts_format = if plan.ms_in_timestamp {
                "YYYY-MM-DD\"T\"HH24:MI:SS.MS"
            } else {
                "YYYY-MM-DD\"T\"HH24:MI:SS"
            };
            let mut expr = if typname == "nested" {
                format!("coalesce(({c}).json,'null')")
            } else if typname == "timestamp" {
                let tc = format!("to_char({c}, '{ts_format}')");
                if lists {
                    format!("coalesce(to_json({tc}), 'null')")
                } else {
                    tc
                }
            } else if typname.starts_with('_') || typname.ends_with("[]") {
                format!("coalesce(array_to_json({c}),'null')")
            } else if lists {
                format!("coalesce(to_json({c}),'null')")
            } else {
                c.clone()
            };
            if objects {
                expr = format!("{expr} as {c}");
            }
            expr
        }
    }
}

/// One filter operation as SQL (CKAN's `_where_clauses.build_clause`).
fn filter_clause(fo: &FilterOp, plan: &Plan, b: &mut Binder) -> Result<String, ApiError> {
    match (fo.op.as_str(), &fo.value, &fo.field) {
        ("$and" | "$or", FilterValue::Children(children), None) => {
            let parts = children
                .iter()
                .map(|c| filter_clause(c, plan, b))
                .collect::<Result<Vec<_>, _>>()?;
            let parts: Vec<String> = parts.into_iter().filter(|p| !p.is_empty()).collect();
            let (joiner, empty) = if fo.op == "$and" {
                (" AND ", "true")
            } else {
                (" OR ", "false")
            };
            Ok(if parts.is_empty() {
                empty.to_string()
            } else {
                format!("({})", parts.join(joiner))
            })
        }
        (_, FilterValue::Json(value), Some(field)) => {
            let Some(col) = plan.table.column(field) else {
                return Ok(String::new());
            };
            let c = ident(field);
            let cmp = match fo.op.as_str() {
                "eq" => "=",
                "gt" => ">",
                "gte" => ">=",
                "lt" => "<",
                "lte" => "<=",
                "in" => {
                    let items: Vec<Value> = match value {
                        Value::Array(a) => a.clone(),
                        Value::String(s) => {
                            s.chars().map(|ch| Value::String(ch.to_string())).collect()
                        }
                        Value::Object(m) => m.keys().map(|k| Value::String(k.clone())).collect(),
                        _ => {
                            return Err(ApiError::Internal(
                                "`in` filter on a non-iterable value".into(),
                            ))
                        }
                    };
                    if items.is_empty() {
                        return Ok("false".into());
                    }
                    let ph = items
                        .iter()
                        .map(|v| placeholder(col, v, b))
                        .collect::<Result<Vec<_>, _>>()?;
                    return Ok(format!("{c} in ({})", ph.join(",")));
                }
                "$and" | "$or" => {
                    // CKAN walks the raw value as operations and fails on a dict (500).
                    return Err(ApiError::Internal(
                        "operator used as a column filter".into(),
                    ));
                }
                _ => {
                    return Err(ApiError::field(
                        "filters",
                        format!("Unknown filter operation: {}", fo.python_repr()),
                    ))
                }
            };
            Ok(format!("{c} {cmp} {}", placeholder(col, value, b)?))
        }
        _ => Err(ApiError::Internal("malformed filter tree".into())),
    }
}

/// A filter value as SQL. CKAN stringifies values for `text` columns (Python `str()`), and
/// otherwise lets PostgreSQL convert the literal: strings are cast to the column's type, numbers
/// stay numbers, `null` is SQL NULL.
fn placeholder(
    col: &crate::catalog::Column,
    v: &Value,
    b: &mut Binder,
) -> Result<String, ApiError> {
    if col.typname == "text" {
        return Ok(b.bind(Bind::Text(pyjson::python_str(v))));
    }
    Ok(match v {
        Value::Null => "NULL".into(),
        Value::Bool(x) => b.bind(Bind::Bool(*x)),
        Value::Number(n) => {
            let text = n.to_string();
            match (pyjson::is_integer_text(&text), n.as_i64()) {
                (true, Some(i)) => b.bind(Bind::Int(i)),
                _ => b.bind_as(Bind::Text(pyjson::python_number_str(n)), "numeric"),
            }
        }
        Value::String(s) => b.bind_as(Bind::Text(s.clone()), &col.sql_type),
        Value::Array(_) | Value::Object(_) => {
            let kind = if v.is_array() { "list" } else { "dict" };
            return Err(ApiError::invalid_query(&format!(
                "can't adapt type '{kind}'"
            )));
        }
    })
}

/// The page statement for `objects` / `lists`: one row with the records text, then the next-page
/// id (JSON text) when asked, the total columns when asked (count or NULL, snapshot, marker),
/// and the metadata fingerprint.
pub struct PageStatement {
    pub sql: String,
    pub binder: Binder,
    pub next_col: Option<usize>,
    /// First of the three total columns.
    pub total_col: Option<usize>,
    pub fingerprint_col: usize,
    pub total_plan: Option<TotalPlan>,
}

/// The total's columns, appended to `cols`; returns the plan and the index of the first.
fn total_columns(
    plan: &Plan,
    p: &Pieces,
    b: &mut Binder,
    totals: &TotalsCache,
    cols: &mut Vec<String>,
) -> (Option<TotalPlan>, Option<usize>) {
    if !plan.include_total {
        return (None, None);
    }
    let tp = TotalPlan::new(totals, plan, p, b, totals.trust_markers);
    let name = b.bind(Bind::Text(plan.table.id.clone()));
    let first = cols.len();
    cols.extend(tp.columns(b, &name, totals.max_staleness));
    (Some(tp), Some(first))
}

pub fn page_statement(
    plan: &Plan,
    requested: &str,
    totals: &TotalsCache,
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
    let (total_plan, total_col) = total_columns(plan, &p, &mut b, totals, &mut cols);
    let name = b.bind(Bind::Text(requested.to_string()));
    let fingerprint_col = cols.len();
    cols.push(crate::catalog::fingerprint_sql(&name));
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
        total_plan,
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
    totals: &TotalsCache,
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
    let (total_plan, total_col) = total_columns(plan, &p, &mut b, totals, &mut cols);
    let name = b.bind(Bind::Text(requested.to_string()));
    cols.push(crate::catalog::fingerprint_sql(&name));
    let fingerprint_col = cols.len() - 1;
    Ok(PageStatement {
        sql: format!("SELECT {}", cols.join(", ")),
        binder: b,
        next_col,
        total_col,
        fingerprint_col,
        total_plan,
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
