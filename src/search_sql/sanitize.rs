//! CKAN 2.12's `sanitize_sql`, with PostgreSQL's own parser (libpg_query through `pg_query`,
//! the same parser CKAN uses through pglast 8.4): one statement, every node of its tree in
//! CKAN's allowlist, the tables and functions it names, and the statement re-serialized from
//! the tree (so comments and anything the parser did not understand never reach the server).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::error::ApiError;

/// CKAN 2.12.0's `postgres_ast_allowlist.py`: node types a query may contain (pglast's names).
const NODE_TYPE_ALLOWLIST: &[&str] = &[
    "TypeName",
    "ColumnRef",
    "ParamRef",
    "A_Expr",
    "A_Const",
    "TypeCast",
    "CollateClause",
    "FuncCall",
    "A_Star",
    "A_Indices",
    "A_Indirection",
    "A_ArrayExpr",
    "ResTarget",
    "SortBy",
    "WindowDef",
    "RangeSubselect",
    "RangeFunction",
    "RangeTableFunc",
    "RangeTableFuncCol",
    "RangeTableSample",
    "ColumnDef",
    "RangeTblEntry",
    "RTEPermissionInfo",
    "RangeTblFunction",
    "TableSampleClause",
    "SortGroupClause",
    "GroupingSet",
    "WindowClause",
    "WithClause",
    "CTESearchClause",
    "CTECycleClause",
    "CommonTableExpr",
    "MergeWhenClause",
    "JsonArgument",
    "JsonFuncExpr",
    "JsonTablePathSpec",
    "JsonTable",
    "JsonTableColumn",
    "JsonKeyValue",
    "JsonParseExpr",
    "JsonScalarExpr",
    "JsonSerializeExpr",
    "JsonObjectConstructor",
    "JsonArrayConstructor",
    "JsonArrayQueryConstructor",
    "JsonAggConstructor",
    "JsonObjectAgg",
    "JsonArrayAgg",
    "RawStmt",
    "SelectStmt",
    "SetOperationStmt",
    "Alias",
    "RangeVar",
    "TableFunc",
    "Expr",
    "Var",
    "Const",
    "Param",
    "Aggref",
    "GroupingFunc",
    "WindowFunc",
    "WindowFuncRunCondition",
    "MergeSupportFunc",
    "SubscriptingRef",
    "FuncExpr",
    "NamedArgExpr",
    "OpExpr",
    "ScalarArrayOpExpr",
    "BoolExpr",
    "SubLink",
    "FieldSelect",
    "FieldStore",
    "RelabelType",
    "CoerceViaIO",
    "ArrayCoerceExpr",
    "ConvertRowtypeExpr",
    "CollateExpr",
    "CaseExpr",
    "CaseWhen",
    "CaseTestExpr",
    "ArrayExpr",
    "RowExpr",
    "RowCompareExpr",
    "CoalesceExpr",
    "MinMaxExpr",
    "SQLValueFunction",
    "XmlExpr",
    "JsonFormat",
    "JsonReturning",
    "JsonValueExpr",
    "JsonConstructorExpr",
    "JsonIsPredicate",
    "JsonBehavior",
    "JsonExpr",
    "JsonTablePath",
    "JsonTablePlan",
    "JsonTablePathScan",
    "JsonTableSiblingJoin",
    "NullTest",
    "BooleanTest",
    "CoerceToDomain",
    "CoerceToDomainValue",
    "CurrentOfExpr",
    "NextValueExpr",
    "InferenceElem",
    "TargetEntry",
    "RangeTblRef",
    "JoinExpr",
    "FromExpr",
    "OnConflictExpr",
    "Integer",
    "Float",
    "Boolean",
    "String",
    "BitString",
];

/// Functions never allowed, whatever the allowlist file says: each runs SQL given as text,
/// which is never parsed for the tables it reads (CKAN 2.12.0 ships `ts_rewrite` in its list:
/// docs/ckan-spec/ckan-auth.md §4.4 #1, fixed upstream as CVE-2026-42032), or reaches outside the database.
pub const NEVER_ALLOWED: &[&str] = &[
    "ts_rewrite",
    "ts_stat",
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
    "table_to_xml",
    "table_to_xmlschema",
    "table_to_xml_and_xmlschema",
    "database_to_xml",
    "schema_to_xml",
    "dblink",
    "dblink_exec",
    "dblink_open",
    "dblink_fetch",
    "dblink_send_query",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_sleep",
    "lo_import",
    "lo_export",
    "set_config",
];

/// What a query is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sanitized {
    /// The statement as the parser understood it, re-serialized.
    pub sql: String,
    /// `(schema, name)` of every table reference, in order of appearance, without repeats.
    pub tables: Vec<(Option<String>, String)>,
    /// Every function name, each as its qualified parts.
    pub functions: Vec<Vec<String>>,
    /// Every type name (casts, column definitions, …), as its qualified parts, without
    /// repeats: PostgreSQL resolves a relation's name as that relation's row type, which
    /// shows its columns (`json_populate_record(NULL::"t", '{}')`), so the service asks the
    /// database which of these are relations and checks those as table references.
    pub types: Vec<TypeRef>,
}

/// A type name as written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TypeRef {
    pub names: Vec<String>,
    /// `t.col%TYPE`: names a relation's column (PL/pgSQL spellings; never valid in a query,
    /// but checked as the table reference it is, whatever the parser accepts).
    pub pct_type: bool,
}

fn validation(message: String) -> ApiError {
    let mut m = serde_json::Map::new();
    m.insert("message".into(), Value::String(message));
    ApiError::Validation(m)
}

/// pglast's node names for the few types `pg_query`'s protobuf spells differently.
fn pglast_name(protobuf_name: &str) -> String {
    match protobuf_name {
        "AExpr" => "A_Expr".into(),
        "AConst" => "A_Const".into(),
        "AStar" => "A_Star".into(),
        "AIndices" => "A_Indices".into(),
        "AIndirection" => "A_Indirection".into(),
        "AArrayExpr" => "A_ArrayExpr".into(),
        "SqlvalueFunction" | "SqlValueFunction" => "SQLValueFunction".into(),
        "CoerceViaIo" => "CoerceViaIO".into(),
        "RtepermissionInfo" | "RtePermissionInfo" => "RTEPermissionInfo".into(),
        "CtesearchClause" | "CteSearchClause" => "CTESearchClause".into(),
        "CteCycleClause" => "CTECycleClause".into(),
        other => other.to_string(),
    }
}

/// Fields of parse-tree structs that hold another struct directly rather than a generic
/// `Node` (parent type, field, child type), for every type the allowlist admits — generated
/// from `pg_query`'s `protobuf.rs` (18.1.0). Any other struct-valued field is refused (fail
/// closed), so a parser upgrade that adds one cannot slip a node past the allowlist.
const DIRECT_FIELDS: &[(&str, &str, &str)] = &[
    ("AConst", "val", "Val"),
    ("ColumnDef", "type_name", "TypeName"),
    ("ColumnDef", "identity_sequence", "RangeVar"),
    ("ColumnDef", "coll_clause", "CollateClause"),
    ("CommonTableExpr", "search_clause", "CteSearchClause"),
    ("CommonTableExpr", "cycle_clause", "CteCycleClause"),
    ("FuncCall", "over", "WindowDef"),
    ("JoinExpr", "join_using_alias", "Alias"),
    ("JoinExpr", "alias", "Alias"),
    ("JsonAggConstructor", "output", "JsonOutput"),
    ("JsonAggConstructor", "over", "WindowDef"),
    ("JsonArgument", "val", "JsonValueExpr"),
    ("JsonArrayAgg", "arg", "JsonValueExpr"),
    ("JsonArrayConstructor", "output", "JsonOutput"),
    ("JsonArrayQueryConstructor", "output", "JsonOutput"),
    ("JsonArrayQueryConstructor", "format", "JsonFormat"),
    ("JsonConstructorExpr", "returning", "JsonReturning"),
    ("JsonExpr", "format", "JsonFormat"),
    ("JsonExpr", "returning", "JsonReturning"),
    ("JsonExpr", "on_empty", "JsonBehavior"),
    ("JsonExpr", "on_error", "JsonBehavior"),
    ("JsonFuncExpr", "context_item", "JsonValueExpr"),
    ("JsonFuncExpr", "output", "JsonOutput"),
    ("JsonFuncExpr", "on_empty", "JsonBehavior"),
    ("JsonFuncExpr", "on_error", "JsonBehavior"),
    ("JsonIsPredicate", "format", "JsonFormat"),
    ("JsonKeyValue", "value", "JsonValueExpr"),
    ("JsonObjectAgg", "arg", "JsonKeyValue"),
    ("JsonObjectConstructor", "output", "JsonOutput"),
    ("JsonParseExpr", "expr", "JsonValueExpr"),
    ("JsonParseExpr", "output", "JsonOutput"),
    ("JsonReturning", "format", "JsonFormat"),
    ("JsonScalarExpr", "output", "JsonOutput"),
    ("JsonSerializeExpr", "expr", "JsonValueExpr"),
    ("JsonSerializeExpr", "output", "JsonOutput"),
    ("JsonTable", "context_item", "JsonValueExpr"),
    ("JsonTable", "pathspec", "JsonTablePathSpec"),
    ("JsonTable", "on_error", "JsonBehavior"),
    ("JsonTable", "alias", "Alias"),
    ("JsonTableColumn", "type_name", "TypeName"),
    ("JsonTableColumn", "pathspec", "JsonTablePathSpec"),
    ("JsonTableColumn", "format", "JsonFormat"),
    ("JsonTableColumn", "on_empty", "JsonBehavior"),
    ("JsonTableColumn", "on_error", "JsonBehavior"),
    ("JsonTablePathScan", "path", "JsonTablePath"),
    ("JsonValueExpr", "format", "JsonFormat"),
    ("RangeFunction", "alias", "Alias"),
    ("RangeSubselect", "alias", "Alias"),
    ("RangeTableFunc", "alias", "Alias"),
    ("RangeTableFuncCol", "type_name", "TypeName"),
    ("RangeTblEntry", "alias", "Alias"),
    ("RangeTblEntry", "eref", "Alias"),
    ("RangeTblEntry", "subquery", "Query"),
    ("RangeTblEntry", "join_using_alias", "Alias"),
    ("RangeTblEntry", "tablefunc", "TableFunc"),
    ("RangeVar", "alias", "Alias"),
    ("SelectStmt", "into_clause", "IntoClause"),
    ("SelectStmt", "with_clause", "WithClause"),
    ("SelectStmt", "larg", "SelectStmt"),
    ("SelectStmt", "rarg", "SelectStmt"),
    ("TypeCast", "type_name", "TypeName"),
];

/// `A_Const.val`'s variants and the value nodes they are.
fn const_value_type(variant: &str) -> Option<&'static str> {
    Some(match variant {
        "Ival" => "Integer",
        "Fval" => "Float",
        "Boolval" => "Boolean",
        "Sval" => "String",
        "Bsval" => "BitString",
        _ => return None,
    })
}

/// Parses `query` and applies CKAN's checks (409s); `index` turns a parse error into its
/// position, which `pg_query` does not report (the caller asks PostgreSQL).
pub fn sanitize(query: &str) -> Result<Sanitized, ApiError> {
    let parsed = pg_query::parse(query, 0).map_err(parse_error)?;
    if parsed.protobuf.stmts.len() != 1 {
        return Err(validation("Query is not a single statement".into()));
    }
    // The whole tree, generically: every node is `{"node": {"<Type>": {...}}}`.
    let tree = serde_json::to_value(&parsed.protobuf.stmts[0])
        .map_err(|e| ApiError::Internal(format!("parse tree: {e}")))?;
    let mut walk = Walk::default();
    walk.node("RawStmt", &tree)?;
    let sql = parsed
        .deparse(Default::default())
        .map_err(|e| ApiError::Internal(format!("deparse: {e}")))?;
    Ok(Sanitized {
        sql,
        tables: walk.tables,
        functions: walk.functions,
        types: walk.types.into_iter().collect(),
    })
}

/// PostgreSQL's parser message as CKAN shows it (`Invalid SQL: …`); anything else the binding
/// reports (decoding, an interior NUL) is logged and answered without the library's text.
fn parse_error(e: pg_query::Error) -> ApiError {
    match e {
        pg_query::Error::Parse(m) => validation(format!("Invalid SQL: {m}")),
        other => {
            tracing::info!(error = %other, "datastore_search_sql: parser binding error");
            validation("Invalid SQL".into())
        }
    }
}

/// Stack for parsing and checking a query. libpg_query bounds its own recursion (PostgreSQL's
/// `stack depth limit exceeded`, at most 2 MB of C frames), but decoding its protobuf, the
/// generic tree, the walk and the drops recurse once per level in Rust with bigger frames, so
/// they run on a thread whose stack fits the deepest tree libpg_query can produce (only the
/// pages used are ever touched). prost's own 100-level limit is off (`no-recursion-limit`),
/// so `SELECT 1+1+…+1` with hundreds of terms parses as in CKAN.
const PARSER_STACK: usize = 256 << 20;

/// Runs `f` (parsing, walking, re-serializing) on a thread with `PARSER_STACK`.
pub async fn on_parser_stack<T, F>(f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("sql-parse".into())
        .stack_size(PARSER_STACK)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| ApiError::Internal(format!("parser thread: {e}")))?;
    rx.await
        .map_err(|_| ApiError::Internal("parser thread ended without an answer".into()))
}

/// A part of the tree this code does not know how to check: refused.
fn unknown(parent: &str, field: &str) -> ApiError {
    validation(format!(
        "Invalid query AST element: {}.{field}",
        pglast_name(parent)
    ))
}

#[derive(Default)]
struct Walk {
    tables: Vec<(Option<String>, String)>,
    seen_tables: BTreeSet<(Option<String>, String)>,
    functions: Vec<Vec<String>>,
    types: BTreeSet<TypeRef>,
}

impl Walk {
    /// Checks the node of type `name` (protobuf spelling) with fields `v`, then what it holds.
    fn node(&mut self, name: &str, v: &Value) -> Result<(), ApiError> {
        // `List` is only the protobuf's wrapper for lists, which pglast shows as tuples.
        if name != "List" {
            let pglast = pglast_name(name);
            if !NODE_TYPE_ALLOWLIST.contains(&pglast.as_str()) {
                return Err(validation(format!("Invalid query AST element: {pglast}")));
            }
            match pglast.as_str() {
                "RangeVar" => self.range_var(v)?,
                "FuncCall" => self.func_call(v),
                "TypeName" => self.type_name(v),
                _ => {}
            }
        }
        let Value::Object(fields) = v else {
            return Ok(());
        };
        for (field, value) in fields {
            if let Some((_, _, child)) = DIRECT_FIELDS
                .iter()
                .find(|(p, f, _)| *p == name && f == field)
            {
                match (value, *child) {
                    (Value::Null, _) => {}
                    (Value::Object(o), "Val") => {
                        for (variant, body) in o {
                            let t =
                                const_value_type(variant).ok_or_else(|| unknown(name, field))?;
                            self.node(t, body)?;
                        }
                    }
                    (v, child) => self.node(child, v)?,
                }
                continue;
            }
            match value {
                Value::Object(_) => self.wrapped(name, field, value)?,
                Value::Array(items) => {
                    for item in items {
                        self.wrapped(name, field, item)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A generic `Node` field: `{"node": {"<Type>": {...}}}` (or an empty node).
    fn wrapped(&mut self, parent: &str, field: &str, v: &Value) -> Result<(), ApiError> {
        let inner = v
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.get("node"))
            .ok_or_else(|| unknown(parent, field))?;
        match inner {
            Value::Null => Ok(()),
            Value::Object(o) if o.len() == 1 => {
                let (t, body) = o.iter().next().expect("one entry");
                self.node(t, body)
            }
            _ => Err(unknown(parent, field)),
        }
    }

    fn range_var(&mut self, v: &Value) -> Result<(), ApiError> {
        let text = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        if let Some(catalog) = text("catalogname") {
            return Err(validation(format!("Catalog cannot be provided: {catalog}")));
        }
        let table = (text("schemaname"), text("relname").unwrap_or_default());
        if self.seen_tables.insert(table.clone()) {
            self.tables.push(table);
        }
        Ok(())
    }

    fn type_name(&mut self, v: &Value) {
        let names: Vec<String> = v
            .get("names")
            .and_then(Value::as_array)
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.pointer("/node/String/sval").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let pct_type = v.get("pct_type").and_then(Value::as_bool).unwrap_or(false);
        if !names.is_empty() {
            self.types.insert(TypeRef { names, pct_type });
        }
    }

    fn func_call(&mut self, v: &Value) {
        let parts: Vec<String> = v
            .get("funcname")
            .and_then(Value::as_array)
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.pointer("/node/String/sval").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        self.functions.push(parts);
    }
}

/// The function allowlist: CKAN's file (`ckan.datastore.sqlsearch.allowed_functions_file`, or
/// the one CKAN 2.12.0 ships), minus `NEVER_ALLOWED`.
#[derive(Debug, Clone)]
pub struct Functions {
    allowed: BTreeSet<String>,
}

pub const DEFAULT_ALLOWED_FUNCTIONS: &str = include_str!("../sql_assets/allowed_functions.txt");

impl Functions {
    pub fn from_text(text: &str) -> Functions {
        let allowed = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .filter(|l| !NEVER_ALLOWED.contains(&l.trim_matches('"').to_lowercase().as_str()))
            .map(str::to_string)
            .collect();
        Functions { allowed }
    }

    /// CKAN's rule: a qualified name is refused; otherwise the lower-cased name, or the name in
    /// double quotes, must be listed. The refusal names the function as CKAN does.
    pub fn check(&self, parts: &[String]) -> Result<(), ApiError> {
        let refuse = |name: String| {
            ApiError::Forbidden(Some(format!("Not authorized to call function {name}")))
        };
        if parts.len() != 1 {
            return Err(refuse(parts.join(".")));
        }
        let f = &parts[0];
        if self.allowed.contains(&f.to_lowercase()) || self.allowed.contains(&format!("\"{f}\"")) {
            Ok(())
        } else {
            Err(refuse(f.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: ApiError) -> String {
        e.error_object().unwrap()["message"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn finds_tables_and_functions() {
        let s = sanitize(
            "WITH t AS (SELECT 1 AS a) SELECT upper(x.v), public.lower('a') /* hi */ \
             FROM t, \"abc-1\" x JOIN other.tab y ON true, (SELECT 1 FROM \"abc-1\") s",
        )
        .unwrap();
        assert_eq!(
            s.tables,
            vec![
                (None, "t".to_string()),
                (None, "abc-1".to_string()),
                (Some("other".to_string()), "tab".to_string()),
            ]
        );
        assert!(s.functions.contains(&vec!["upper".to_string()]));
        assert!(s
            .functions
            .contains(&vec!["public".to_string(), "lower".to_string()]));
        assert!(!s.sql.contains("hi"), "comments are gone: {}", s.sql);
    }

    #[test]
    fn refuses_what_ckan_refuses() {
        let cases = [
            ("SELEC 1", "Invalid SQL: syntax error at or near \"SELEC\""),
            ("SELECT 1; SELECT 2", "Query is not a single statement"),
            (
                "INSERT INTO t VALUES (1)",
                "Invalid query AST element: InsertStmt",
            ),
            ("DELETE FROM t", "Invalid query AST element: DeleteStmt"),
            (
                "SELECT * FROM t FOR UPDATE",
                "Invalid query AST element: LockingClause",
            ),
            (
                "SELECT * INTO x FROM t",
                "Invalid query AST element: IntoClause",
            ),
            ("COPY t TO '/tmp/x'", "Invalid query AST element: CopyStmt"),
            (
                "SELECT * FROM db.public.t",
                "Catalog cannot be provided: db",
            ),
        ];
        for (sql, want) in cases {
            assert_eq!(message(sanitize(sql).unwrap_err()), want, "{sql}");
        }
    }

    #[test]
    fn function_allowlist() {
        let f = Functions::from_text(DEFAULT_ALLOWED_FUNCTIONS);
        assert!(f.check(&["upper".into()]).is_ok());
        assert!(f.check(&["UPPER".into()]).is_ok());
        for bad in ["pg_sleep", "ts_rewrite", "dblink", "query_to_xml"] {
            let e = f.check(&[bad.into()]).unwrap_err();
            assert_eq!(
                message(e),
                format!("Access denied: Not authorized to call function {bad}")
            );
        }
        let e = f.check(&["pg_catalog".into(), "upper".into()]).unwrap_err();
        assert_eq!(
            message(e),
            "Access denied: Not authorized to call function pg_catalog.upper"
        );
    }
}

#[cfg(test)]
mod accepted {
    use super::*;

    /// Ordinary analytic SQL passes the walk (no false refusals from the tree shape).
    #[test]
    fn everyday_queries_pass() {
        for sql in [
            "SELECT a, count(*) AS n, sum(b) FILTER (WHERE b > 0) FROM t GROUP BY a HAVING count(*) > 1 ORDER BY n DESC NULLS LAST LIMIT 5 OFFSET 2",
            "WITH x AS (SELECT * FROM t), y AS MATERIALIZED (SELECT 1) SELECT * FROM x JOIN y ON true",
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r",
            "SELECT a, rank() OVER (PARTITION BY b ORDER BY c), avg(c) OVER w FROM t WINDOW w AS (ORDER BY a ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)",
            "SELECT DISTINCT ON (a) a, b FROM t ORDER BY a, b",
            "SELECT CASE WHEN a IS NULL THEN 'x' WHEN a BETWEEN 1 AND 2 THEN 'y' ELSE 'z' END FROM t WHERE b LIKE 'a%' AND c IN (1, 2) AND NOT EXISTS (SELECT 1 FROM u WHERE u.a = t.a)",
            "SELECT a::numeric(10,2), CAST(b AS text), c COLLATE \"C\", ARRAY[1,2], (ARRAY[1,2])[1], '{1,2}'::int[] FROM t",
            "SELECT coalesce(a, 0), nullif(a, 1), greatest(a, b), ROW(a, b), CURRENT_DATE, now(), interval '1 day' FROM t",
            "SELECT * FROM t UNION SELECT * FROM u EXCEPT SELECT * FROM v",
            "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(x, y)",
            "SELECT * FROM t, LATERAL (SELECT * FROM u WHERE u.a = t.a) s",
            "SELECT a, b FROM t GROUP BY GROUPING SETS ((a), (b), ())",
            "SELECT j->>'k', j #> '{a,b}', j @> '{\"a\":1}' FROM t",
            "SELECT * FROM generate_series(1, 3) AS g(i)",
            "SELECT \"_id\", \"_full_text\" FROM \"11111111-1111-4111-8111-111111111111\" x LEFT OUTER JOIN t USING (a)",
            "SELECT json_build_object('a', 1), to_char(now(), 'YYYY'), upper(a) FROM t",
        ] {
            if let Err(e) = sanitize(sql) {
                panic!("{sql}: {:?}", e.error_object());
            }
        }
    }
}
