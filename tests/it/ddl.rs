//! Our test tables are built with the DDL CKAN's `datastore_create` runs
//! (`ckan_datastore::ckan_schema`). This test checks that DDL against a database the real CKAN
//! 2.12.0 built: `tests/fixtures/ckan_datastore_schema.sql` is `pg_dump --schema-only` of the
//! oracle's DataStore after it created the two golden tables through the API.
//!
//! Checked, for both tables, in pg_dump's own rendering: the CREATE TABLE column list (names,
//! types incl. `public.nested` for json columns, NOT NULL), the `_id` primary-key constraint,
//! every other index (the `_full_text` GiST index and the primary_key's UNIQUE btree, with
//! CKAN's sha1 index names), the `zfulltext` trigger, the data-dictionary column comments, the
//! alias view; and for the database: the `nested` type, the `_table_metadata` view and the
//! `_table_stats` table from `set-permissions`. Not checked: function bodies (pg_dump's layout
//! differs from `pg_get_functiondef`; they come verbatim from CKAN's set_permissions.sql),
//! ownership and grants.

use crate::harness::{spawn_app, SAMPLE, UGLY};

fn dump() -> String {
    std::fs::read_to_string(crate::harness::repo_path(
        "tests/fixtures/ckan_datastore_schema.sql",
    ))
    .unwrap()
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[tokio::test]
async fn tables_are_created_exactly_as_ckan_creates_them() {
    let app = spawn_app().await;
    let db = app.writer().await;
    db.batch_execute("SET search_path = ''").await.unwrap();
    let dump = dump();
    let mut missing = Vec::new();
    let mut expect = |what: String| {
        if !dump.contains(&what) {
            missing.push(what);
        }
    };
    for table in [SAMPLE, UGLY] {
        let q = |sql: &str| sql.replace("$T", &format!("'public.\"{table}\"'::regclass"));
        let rows = db
            .query(
                &q(
                    "SELECT quote_ident(attname), format_type(atttypid, atttypmod), attnotnull, \
                    col_description(attrelid, attnum) FROM pg_attribute \
                    WHERE attrelid = $T AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                ),
                &[],
            )
            .await
            .unwrap();
        let cols: Vec<String> = rows
            .iter()
            .map(|r| {
                let nn = if r.get::<_, bool>(2) { " NOT NULL" } else { "" };
                format!(
                    "    {} {}{nn}",
                    r.get::<_, String>(0),
                    r.get::<_, String>(1)
                )
            })
            .collect();
        expect(format!(
            "CREATE TABLE public.\"{table}\" (\n{}\n);",
            cols.join(",\n")
        ));
        for r in &rows {
            if let Some(comment) = r.get::<_, Option<String>>(3) {
                expect(format!(
                    "COMMENT ON COLUMN public.\"{table}\".{} IS {};",
                    r.get::<_, String>(0),
                    quote_literal(&comment)
                ));
            }
        }
        expect(format!(
            "ALTER TABLE ONLY public.\"{table}\"\n    ADD CONSTRAINT \"{table}_pkey\" PRIMARY KEY (_id);"
        ));
        for r in db
            .query(&q("SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = $T AND NOT indisprimary"), &[])
            .await
            .unwrap()
        {
            expect(format!("{};", r.get::<_, String>(0)));
        }
        for r in db
            .query(
                &q("SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = $T"),
                &[],
            )
            .await
            .unwrap()
        {
            expect(format!("{};", r.get::<_, String>(0)));
        }
    }
    let alias = db
        .query_one(
            "SELECT pg_get_viewdef('public.\"ugly-alias\"'::regclass)",
            &[],
        )
        .await
        .unwrap();
    expect(format!(
        "CREATE VIEW public.\"ugly-alias\" AS\n{}",
        alias.get::<_, String>(0)
    ));
    let meta = db
        .query_one(
            "SELECT pg_get_viewdef('public._table_metadata'::regclass)",
            &[],
        )
        .await
        .unwrap();
    expect(format!(
        "CREATE VIEW public._table_metadata AS\n{}",
        meta.get::<_, String>(0)
    ));
    expect("CREATE TYPE public.nested AS (\n\tjson json,\n\textra text\n);".into());
    expect("CREATE TABLE public._table_stats (\n    resource_id name NOT NULL,\n    stats jsonb NOT NULL\n);".into());
    assert!(
        missing.is_empty(),
        "not found in CKAN's schema dump:\n{}",
        missing.join("\n---\n")
    );
}
