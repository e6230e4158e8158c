//! `datastore_info`: parse the request, run the info service, render CKAN's result object.

use serde_json::{json, Map, Value};

use crate::auth::credentials::Presented;
use crate::catalog::RequestedId;
use crate::error::ApiError;
use crate::object_writer::ObjectWriter;
use crate::search::params::{bool_rule, resource_id_rule};
use crate::service::info::{info, InfoAnswer, InfoParams};
use crate::state::AppState;

pub async fn handle(
    state: &AppState,
    data: Map<String, Value>,
    who: &Presented,
) -> Result<Vec<u8>, ApiError> {
    let requested = resource_id_rule(&data).map_err(|m| ApiError::field("resource_id", m))?;
    // CKAN's `default(True)` + boolean validator: absent, null and "" are true.
    let flag = |k: &str| match data.get(k) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) if s.is_empty() => true,
        Some(v) => bool_rule(v),
    };
    let params = InfoParams {
        requested: RequestedId(requested),
        include_meta: flag("include_meta"),
        include_fields_schema: flag("include_fields_schema"),
    };
    let answer = info(state, &params, who).await?;
    Ok(render(&answer))
}

/// `{"fields": [...], "meta": {...}}` in CKAN's key order.
fn render(answer: &InfoAnswer) -> Vec<u8> {
    let fields: Vec<Value> = answer
        .table
        .columns
        .iter()
        .filter(|c| !c.name.starts_with('_'))
        .map(|c| {
            let mut f = Map::new();
            f.insert("id".into(), json!(c.name));
            f.insert("type".into(), json!(c.typname));
            if let Some(info) = &c.info {
                f.insert("info".into(), info.clone());
            }
            if let Some(schema) = &answer.schema {
                f.insert(
                    "schema".into(),
                    schema.get(&c.name).cloned().unwrap_or(Value::Null),
                );
            }
            Value::Object(f)
        })
        .collect();
    let mut w = ObjectWriter::new();
    w.value("fields", &Value::Array(fields));
    if let Some(m) = &answer.meta {
        let mut meta = Map::new();
        meta.insert("id".into(), json!(answer.table.id));
        meta.insert("count".into(), json!(m.count));
        meta.insert("table_type".into(), json!(m.table_type));
        meta.insert("size".into(), json!(m.size));
        meta.insert("db_size".into(), json!(m.db_size));
        meta.insert("idx_size".into(), json!(m.idx_size));
        meta.insert("aliases".into(), m.aliases.clone());
        w.value("meta", &Value::Object(meta));
    }
    w.finish()
}
