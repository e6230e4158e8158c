//! The SQL of representative plans, pinned: each filter operator and column kind, `q` variants,
//! `distinct`, sorts with NULLS, `fields`, the record formats, and the total's columns. A change
//! to the SQL shows here as a diff a reviewer can read. The (long) metadata fingerprint and
//! change-marker subqueries are shown as `FINGERPRINT($n)` and `MARKER($n)`, and the metadata
//! check's two columns (`statement::metadata_check`) as `CHECK($n)`; their own text is pinned
//! once, below.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::catalog::{Column, Table, TableId};
use crate::config::Settings;
use crate::search::params::SearchParams;
use crate::search::plan::{plan, Plan};
use crate::search::statement::{
    copy_companion, copy_statement, count_query, dump_rows_statement, marker_sql, page_statement,
    TotalSql,
};
use crate::sql::Bind;

const RID: &str = "9a3c2f2e-0000-4000-8000-000000000001";

/// A table with one column of each kind, as the catalog loads it.
fn table() -> Arc<Table> {
    let col = Column::new;
    Arc::new(Table::new(
        TableId(RID.into()),
        vec![
            col("_id", "int", "integer"),
            col("id", "int4", "integer"),
            col("name", "text", "text"),
            col("price", "numeric", "numeric"),
            col("created", "timestamp", "timestamp without time zone"),
            col("ok", "bool", "boolean"),
            col("tags", "_text", "text[]"),
            col("meta", "nested", "nested"),
        ],
        "fp".into(),
        String::new(),
    ))
}

fn plan_for(request: Value) -> Plan {
    let settings = Settings::with_read_url("postgresql://x@localhost/db");
    let mut data = request.as_object().cloned().expect("an object");
    data.insert("resource_id".into(), json!(RID));
    let params = SearchParams::parse(&data, &settings).expect("valid parameters");
    plan(&params, table(), &settings).expect("a plan")
}

/// The statement text with the catalog subqueries abbreviated (see the module comment).
fn readable(sql: &str) -> String {
    let mut out = sql.to_string();
    for n in 1..20 {
        // Names are bound as text: the subqueries see `$n::text`.
        let p = format!("${n}::text");
        out = out.replace(
            &crate::catalog::fingerprint_sql(&p),
            &format!("FINGERPRINT(${n})"),
        );
        out = out.replace(&marker_sql(&p), &format!("MARKER(${n})"));
    }
    for n in 1..20 {
        let check = format!(
            "CASE WHEN pg_current_snapshot()::text = ${}::text THEN ${}::text ELSE FINGERPRINT(${n}) END, \
             pg_current_snapshot()::text",
            n + 1,
            n + 2
        );
        out = out.replace(&check, &format!("CHECK(${n})"));
    }
    out
}

/// The page statement without a total (what most cases are about), and its binds.
fn page(request: Value) -> (String, Vec<Bind>) {
    let mut request = request;
    request["include_total"] = json!(false);
    let p = plan_for(request);
    let st = page_statement(&p, RID, None).expect("a statement");
    (readable(&st.sql), st.binder.values().to_vec())
}

fn text(s: &str) -> Bind {
    Bind::Text(s.into())
}

/// The records page CTE wrapped into the JSON array of objects, for `select` and the rest.
fn objects(select: &str, rest: &str, binds_after: usize) -> String {
    format!(
        "WITH records_page AS (SELECT * FROM \"{RID}\" {rest}), \
         select_cols AS (SELECT  {select} FROM records_page ), \
         json_cols AS (SELECT array_to_json(array_agg(select_cols))::text j FROM select_cols) \
         SELECT json_cols.j, CHECK(${binds_after}) FROM json_cols"
    )
}

const ALL_COLUMNS: &str = "\"_id\" as \"_id\", \"id\" as \"id\", \"name\" as \"name\", \
    \"price\" as \"price\", to_char(\"created\", 'YYYY-MM-DD\"T\"HH24:MI:SS.MS') as \"created\", \
    \"ok\" as \"ok\", coalesce(array_to_json(\"tags\"),'null') as \"tags\", \
    coalesce((\"meta\").json,'null') as \"meta\"";

#[test]
fn plain_page_renders_each_column_kind() {
    let (sql, binds) = page(json!({}));
    assert_eq!(
        sql,
        objects(ALL_COLUMNS, " ORDER BY \"_id\" asc LIMIT 100 OFFSET 0", 1)
    );
    assert_eq!(binds, vec![text(RID), text(""), text("fp")]);
}

#[test]
fn fields_and_sort_with_nulls() {
    let (sql, _) = page(json!({"fields": "name,price", "sort": "price DESC NULLS last, name"}));
    assert_eq!(
        sql,
        objects(
            "\"name\" as \"name\", \"price\" as \"price\"",
            " ORDER BY \"price\" desc nulls last, \"name\" asc LIMIT 100 OFFSET 0",
            1
        )
    );
}

#[test]
fn eq_on_text_binds_python_str() {
    // CKAN compares text columns with Python's str() of the value: 5 becomes '5'.
    let (sql, binds) = page(json!({"filters": {"name": 5}, "fields": "_id"}));
    assert_eq!(
        sql,
        objects(
            "\"_id\" as \"_id\"",
            "WHERE (\"name\" = $1::text) ORDER BY \"_id\" asc LIMIT 100 OFFSET 0",
            2
        )
    );
    // The last three: the requested name, the snapshot and the fingerprint of the metadata check.
    assert_eq!(binds, vec![text("5"), text(RID), text(""), text("fp")]);
}

#[test]
fn eq_on_integer_column() {
    let (sql, binds) = page(json!({"filters": {"id": 4}, "fields": "_id"}));
    assert!(sql.contains("WHERE (\"id\" = $1::int8) ORDER BY"), "{sql}");
    assert_eq!(binds[0], Bind::Int(4));
}

#[test]
fn range_on_timestamp_casts_to_the_column_type() {
    let (sql, binds) =
        page(json!({"filters": {"created": {"gte": "2020-01-01"}}, "fields": "_id"}));
    assert!(
        sql.contains("WHERE (\"created\" >= $1::text::timestamp without time zone) ORDER BY"),
        "{sql}"
    );
    assert_eq!(binds[0], text("2020-01-01"));
}

#[test]
fn in_list_and_empty_in() {
    let (sql, binds) = page(json!({"filters": {"name": ["a", "b"]}, "fields": "_id"}));
    assert!(
        sql.contains("WHERE (\"name\" in ($1::text,$2::text)) ORDER BY"),
        "{sql}"
    );
    assert_eq!(binds[..2], [text("a"), text("b")]);
    let (sql, _) = page(json!({"filters": {"id": {"in": []}}, "fields": "_id"}));
    assert!(sql.contains("WHERE (false) ORDER BY"), "{sql}");
}

#[test]
fn or_of_numeric_comparisons() {
    // A non-integer number is bound as text and cast to numeric, as CKAN's literal is.
    let (sql, binds) = page(json!({
        "filters": {"$or": [{"price": {"lt": 1.5}}, {"id": {"gt": 10}}]},
        "fields": "_id"
    }));
    assert!(
        sql.contains("WHERE ((\"price\" < $1::text::numeric OR \"id\" > $2::int8)) ORDER BY"),
        "{sql}"
    );
    assert_eq!(binds[..2], [text("1.5"), Bind::Int(10)]);
}

#[test]
fn bool_and_null_values() {
    let (sql, binds) = page(json!({"filters": {"ok": true, "price": null}, "fields": "_id"}));
    assert!(
        sql.contains("WHERE ((\"ok\" = $1::bool AND \"price\" = NULL)) ORDER BY"),
        "{sql}"
    );
    assert_eq!(binds[0], Bind::Bool(true));
}

#[test]
fn q_text_ranks_and_orders_by_rank() {
    let (sql, binds) = page(json!({"q": "river", "fields": "_id"}));
    assert_eq!(
        sql,
        format!(
            "WITH records_page AS (SELECT * FROM \"{RID}\" , plainto_tsquery($1::regconfig, $2::text) \"query\" \
             WHERE (_full_text @@ \"query\") ORDER BY ts_rank(_full_text, \"query\", 32) DESC LIMIT 100 OFFSET 0), \
             select_cols AS (SELECT  \"_id\" as \"_id\" FROM records_page ), \
             json_cols AS (SELECT array_to_json(array_agg(select_cols))::text j FROM select_cols) \
             SELECT json_cols.j, CHECK($3) FROM json_cols"
        )
    );
    assert_eq!(
        binds,
        vec![
            Bind::Regconfig("english".into()),
            text("river"),
            text(RID),
            text(""),
            text("fp")
        ]
    );
}

#[test]
fn q_per_column_with_language_and_prefix_syntax() {
    let (sql, binds) = page(json!({
        "q": {"name": "riv:*"}, "plain": false, "language": "simple", "fields": "_id"
    }));
    assert!(
        sql.contains(
            ", to_tsquery($1::regconfig, $2::text) \"query name\" \
             WHERE (_full_text @@ \"query name\") AND \
             (to_tsvector($1::regconfig, cast(\"name\" as text)) @@ \"query name\") \
             ORDER BY ts_rank(to_tsvector($1::regconfig, cast(\"name\" as text)), \"query name\", 32) DESC"
        ),
        "{sql}"
    );
    assert_eq!(
        binds[..2],
        [Bind::Regconfig("simple".into()), text("riv:*")]
    );
}

#[test]
fn rank_column_requested_as_a_field() {
    let (sql, _) = page(json!({"q": "river", "fields": "_id,rank"}));
    assert!(
        sql.contains(
            "SELECT  \"_id\" as \"_id\", ts_rank(_full_text, \"query\", 32) as \"rank\" FROM"
        ),
        "{sql}"
    );
}

#[test]
fn distinct_sorts_after_the_distinct_select() {
    let (sql, _) = page(json!({"distinct": true, "fields": "name", "sort": "name"}));
    assert_eq!(
        sql,
        format!(
            "WITH records_page AS (SELECT * FROM \"{RID}\" ), \
             select_cols AS (SELECT DISTINCT \"name\" as \"name\" FROM records_page ORDER BY \"name\" asc LIMIT 100 OFFSET 0), \
             json_cols AS (SELECT array_to_json(array_agg(select_cols))::text j FROM select_cols) \
             SELECT json_cols.j, CHECK($1) FROM json_cols"
        )
    );
}

#[test]
fn lists_format_concatenates_json_values() {
    let (sql, _) = page(json!({"records_format": "lists", "fields": "id,created,tags"}));
    assert_eq!(
        sql,
        format!(
            "WITH records_page AS (SELECT * FROM \"{RID}\"  ORDER BY \"_id\" asc LIMIT 100 OFFSET 0), \
             select_cols AS (SELECT  '[' || coalesce(to_json(\"id\"),'null') || ',' || \
             coalesce(to_json(to_char(\"created\", 'YYYY-MM-DD\"T\"HH24:MI:SS.MS')), 'null') || ',' || \
             coalesce(array_to_json(\"tags\"),'null') || ']' v FROM records_page ), \
             list_cols AS (SELECT '[' || array_to_string(array_agg(select_cols.v), ',') || ']' lc FROM select_cols) \
             SELECT list_cols.lc, CHECK($1) FROM list_cols"
        )
    );
}

#[test]
fn next_page_column_for_id_sorts() {
    let p = plan_for(
        json!({"include_total": false, "include_next_page": true, "fields": "_id", "sort": "_id desc", "offset": 5}),
    );
    let st = page_statement(&p, RID, None).unwrap();
    let sql = readable(&st.sql);
    assert!(
        sql.ends_with(
            "SELECT json_cols.j, (SELECT to_json(min(_id))::text FROM records_page), CHECK($1) FROM json_cols"
        ),
        "{sql}"
    );
    assert!(
        sql.contains("ORDER BY \"_id\" desc LIMIT 100 OFFSET 5"),
        "{sql}"
    );
    assert_eq!((st.next_col, st.fingerprint_col), (Some(1), 2));
}

#[test]
fn deep_pages_in_id_order_skip_through_the_primary_key() {
    let (sql, _) = page(json!({"offset": 900000, "fields": "_id"}));
    assert!(
        sql.starts_with(&format!(
            "WITH records_page AS (SELECT * FROM \"{RID}\" WHERE \"_id\" IN \
             (SELECT \"_id\" FROM \"{RID}\" ORDER BY \"_id\" asc LIMIT 100 OFFSET 900000) \
             ORDER BY \"_id\" asc), select_cols AS"
        )),
        "{sql}"
    );
    let (sql, _) = page(json!({"offset": 20000, "sort": "_id desc", "fields": "_id"}));
    assert!(
        sql.contains("ORDER BY \"_id\" desc LIMIT 100 OFFSET 20000) ORDER BY \"_id\" desc)"),
        "{sql}"
    );
    // Shallow pages, other sorts and filtered pages keep CKAN's shape.
    for request in [
        json!({"offset": 9999, "fields": "_id"}),
        json!({"offset": 900000, "sort": "name", "fields": "_id"}),
        json!({"offset": 900000, "filters": {"id": 1}, "fields": "_id"}),
        json!({"offset": 900000, "sort": "_id desc nulls last", "fields": "_id"}),
    ] {
        let (sql, _) = page(request.clone());
        assert!(!sql.contains("IN (SELECT"), "{request}: {sql}");
    }
}

#[test]
fn total_counted_or_checked() {
    let p = plan_for(json!({"filters": {"name": "a"}, "fields": "_id"}));
    let (count, binds) = count_query(&p).unwrap();
    assert_eq!(
        count,
        format!("SELECT count(*) FROM \"{RID}\" WHERE (\"name\" = $1::text)")
    );
    assert_eq!(binds, vec![text("a")]);

    let st = page_statement(&p, RID, Some(&TotalSql::Count { with_marker: true })).unwrap();
    assert!(
        readable(&st.sql).ends_with(&format!(
            "SELECT json_cols.j, ({count}), pg_current_snapshot()::text, MARKER($2), CHECK($3) FROM json_cols"
        )),
        "{}",
        st.sql
    );
    assert_eq!(st.binder.values()[1], text(RID));
    assert_eq!((st.total_col, st.fingerprint_col), (Some(1), 4));

    // A cached total: the count runs only when neither proof holds.
    let check = TotalSql::Check {
        snapshot: "100:100:".into(),
        marker: Some("m".into()),
        with_marker: true,
    };
    let st = page_statement(&p, RID, Some(&check)).unwrap();
    let valid =
        "pg_current_snapshot()::text = $3::text OR MARKER($2) IS NOT DISTINCT FROM $4::text";
    assert!(
        readable(&st.sql).ends_with(&format!(
            "SELECT json_cols.j, CASE WHEN {valid} THEN NULL ELSE ({count}) END, \
             pg_current_snapshot()::text, CASE WHEN {valid} THEN NULL ELSE MARKER($2) END, \
             CHECK($5) FROM json_cols"
        )),
        "{}",
        st.sql
    );
    assert_eq!(st.binder.values()[2..4], [text("100:100:"), text("m")]);
}

#[test]
fn distinct_count_counts_the_distinct_select() {
    let p = plan_for(json!({"distinct": true, "fields": "name"}));
    assert_eq!(
        count_query(&p).unwrap().0,
        format!("SELECT count(*) FROM (SELECT DISTINCT \"name\" as \"name\" FROM \"{RID}\" ) as t")
    );
}

#[test]
fn csv_is_a_copy_with_escaped_literals() {
    let p = plan_for(
        json!({"records_format": "csv", "include_next_page": true, "filters": {"name": "it's"}, "fields": "_id,name"}),
    );
    assert_eq!(
        copy_statement(&p).unwrap(),
        format!(
            "COPY (WITH records_page AS (SELECT * FROM \"{RID}\" WHERE (\"name\" = 'it''s'::text) \
             ORDER BY \"_id\" asc LIMIT 100 OFFSET 0) SELECT  \"_id\", \"name\" FROM records_page ) TO STDOUT csv"
        )
    );
    let companion = copy_companion(&p, RID, None).unwrap();
    assert_eq!(
        readable(&companion.sql),
        format!(
            "SELECT (SELECT to_json(max(_id))::text FROM (SELECT \"_id\" FROM \"{RID}\" WHERE (\"name\" = $1::text) \
             ORDER BY \"_id\" asc LIMIT 100 OFFSET 0) as z), CHECK($2)"
        )
    );
}

#[test]
fn tsv_sets_the_delimiter() {
    let p = plan_for(json!({"records_format": "tsv", "fields": "_id"}));
    assert!(copy_statement(&p)
        .unwrap()
        .ends_with(" TO STDOUT csv DELIMITER E'\\t'"));
}

#[test]
fn json_dump_rows() {
    let p = plan_for(json!({"records_format": "lists", "fields": "_id,ok"}));
    let (sql, _) = dump_rows_statement(&p).unwrap();
    assert_eq!(
        sql,
        format!(
            "WITH records_page AS (SELECT * FROM \"{RID}\"  ORDER BY \"_id\" asc LIMIT 100 OFFSET 0), \
             select_cols AS (SELECT  '[' || coalesce(to_json(\"_id\"),'null') || ',' || coalesce(to_json(\"ok\"),'null') || ']' v \
             FROM records_page ) SELECT v FROM select_cols"
        )
    );
}

#[test]
fn metadata_check_skips_the_fingerprint_while_nothing_committed() {
    let p = plan_for(json!({"include_total": false, "fields": "_id"}));
    p.table.prove("7:9:7");
    let mut b = crate::sql::Binder::params();
    let [check, snapshot] = crate::search::statement::metadata_check(&p, "an-alias", &mut b);
    assert_eq!(
        readable(&check),
        "CASE WHEN pg_current_snapshot()::text = $2::text THEN $3::text ELSE FINGERPRINT($1) END"
    );
    assert_eq!(snapshot, "pg_current_snapshot()::text");
    assert_eq!(b.values(), [text("an-alias"), text("7:9:7"), text("fp")]);
}

#[test]
fn change_marker_text() {
    assert_eq!(
        marker_sql("$9"),
        "(SELECT c.relfilenode::text || '/' || pg_stat_get_tuples_inserted(c.oid) || '/' || \
         pg_stat_get_tuples_updated(c.oid) || '/' || pg_stat_get_tuples_deleted(c.oid) || '/' || \
         pg_stat_get_live_tuples(c.oid) || '/' || pg_stat_get_analyze_count(c.oid) || '/' || \
         pg_stat_get_autoanalyze_count(c.oid) FROM pg_catalog.pg_class c \
         WHERE c.relnamespace = 'public'::regnamespace AND c.relname = $9)"
    );
}
