//! A form per source type, made from the type's own settings schema (the one the OpenAPI
//! document publishes), and the settings read back from what the form sent. The settings are
//! then checked by the same code the JSON API runs, so the form and the API never disagree.

use std::collections::BTreeMap;

use lancesync_sources::SourceType;
use serde_json::Value;

/// How a setting is entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// One line of text.
    Text,
    /// A secret (a token, a key): a password field, never shown back.
    Secret,
    /// A list of strings, one a line.
    Lines,
    /// A whole number.
    Integer,
    /// A number.
    Number,
    /// Yes or no.
    Boolean,
    /// Anything else, as JSON.
    Json,
}

/// One setting of a source type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    pub(crate) key: String,
    pub(crate) kind: Kind,
    pub(crate) description: String,
    pub(crate) required: bool,
}

/// The settings of `ty`, required ones first, each group in the schema's order.
pub(crate) fn fields(ty: SourceType) -> Vec<Field> {
    let mut schemas = Vec::new();
    let name = ty.settings_schema(&mut schemas);
    let by_name: BTreeMap<String, Value> = schemas
        .into_iter()
        .filter_map(|(n, s)| serde_json::to_value(s).ok().map(|v| (n, v)))
        .collect();
    let mut fields = Vec::new();
    let mut required = Vec::new();
    if let Some(root) = by_name.get(&name) {
        collect(root, &by_name, &mut fields, &mut required, 0);
    }
    for f in &mut fields {
        f.required = required.contains(&f.key);
    }
    fields.sort_by_key(|f| !f.required);
    fields
}

/// Properties of `schema`, following `$ref` and `allOf` (a flattened group of settings).
fn collect(
    schema: &Value,
    by_name: &BTreeMap<String, Value>,
    fields: &mut Vec<Field>,
    required: &mut Vec<String>,
    depth: usize,
) {
    if depth > 8 {
        return;
    }
    if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
        if let Some(named) = target.rsplit('/').next().and_then(|n| by_name.get(n)) {
            collect(named, by_name, fields, required, depth + 1);
        }
        return;
    }
    for part in ["allOf", "oneOf", "anyOf"] {
        if let Some(parts) = schema.get(part).and_then(Value::as_array) {
            for p in parts {
                collect(p, by_name, fields, required, depth + 1);
            }
        }
    }
    if let Some(names) = schema.get("required").and_then(Value::as_array) {
        required.extend(names.iter().filter_map(Value::as_str).map(String::from));
    }
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (key, property) in properties {
        if fields.iter().any(|f| f.key == *key) {
            continue;
        }
        let property = resolve(property, by_name);
        fields.push(Field {
            key: key.clone(),
            kind: kind_of(key, property),
            description: property
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            required: false,
        });
    }
}

fn resolve<'a>(schema: &'a Value, by_name: &'a BTreeMap<String, Value>) -> &'a Value {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|t| t.rsplit('/').next())
        .and_then(|n| by_name.get(n))
        .unwrap_or(schema)
}

/// The schema's type, without `null` (an optional setting).
fn type_of(schema: &Value) -> Option<&str> {
    match schema.get("type")? {
        Value::String(t) => Some(t.as_str()),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    }
}

fn kind_of(key: &str, schema: &Value) -> Kind {
    let secret = ["token", "secret", "password", "api_key"]
        .iter()
        .any(|s| key.contains(s));
    match type_of(schema) {
        Some("string") if secret => Kind::Secret,
        Some("string") => Kind::Text,
        Some("integer") => Kind::Integer,
        Some("number") => Kind::Number,
        Some("boolean") => Kind::Boolean,
        Some("array") if schema.get("items").and_then(type_of) == Some("string") => Kind::Lines,
        _ => Kind::Json,
    }
}

/// The settings a form sent (`cfg.{key}` fields), typed by the schema; a value that is not
/// of its type is an error for that key. Empty fields are left out (the type's default).
pub(crate) fn settings(
    fields: &[Field],
    sent: &BTreeMap<String, String>,
) -> Result<toml::Table, (String, String)> {
    let mut table = toml::Table::new();
    for field in fields {
        let raw = sent
            .get(&format!("cfg.{}", field.key))
            .map(|v| v.trim())
            .unwrap_or("");
        let value = match field.kind {
            Kind::Boolean => {
                if raw.is_empty() {
                    continue;
                }
                toml::Value::Boolean(true)
            }
            _ if raw.is_empty() => continue,
            Kind::Text | Kind::Secret => toml::Value::String(raw.to_string()),
            Kind::Lines => toml::Value::Array(
                raw.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| toml::Value::String(l.to_string()))
                    .collect(),
            ),
            Kind::Integer => raw.parse::<i64>().map(toml::Value::Integer).map_err(|_| {
                (
                    field.key.clone(),
                    format!("{} must be a whole number", field.key),
                )
            })?,
            Kind::Number => raw
                .parse::<f64>()
                .map(toml::Value::Float)
                .map_err(|_| (field.key.clone(), format!("{} must be a number", field.key)))?,
            Kind::Json => {
                let json: Value = serde_json::from_str(raw).map_err(|e| {
                    (
                        field.key.clone(),
                        format!("{} must be JSON: {e}", field.key),
                    )
                })?;
                toml::Value::try_from(json).map_err(|_| {
                    (
                        field.key.clone(),
                        format!("{} must be JSON without nulls", field.key),
                    )
                })?
            }
        };
        table.insert(field.key.clone(), value);
    }
    Ok(table)
}

/// The setting an error message is about, if it names one (`missing field \`watch_paths\``,
/// `bucket: ...`).
pub(crate) fn field_named<'a>(message: &str, fields: &'a [Field]) -> Option<&'a str> {
    let mut best: Option<&Field> = None;
    for f in fields {
        let named = message.contains(&format!("`{}`", f.key))
            || message.contains(&format!("{}:", f.key))
            || message.contains(&format!("{} ", f.key));
        // The longest name that fits: `prefix` must not claim `prefix_map`'s error.
        if named && best.is_none_or(|b| f.key.len() > b.key.len()) {
            best = Some(f);
        }
    }
    best.map(|f| f.key.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_a_form() {
        for ty in SourceType::all() {
            let fields = fields(ty);
            assert!(!fields.is_empty(), "{ty}");
        }
        let local = fields(SourceType::LocalFilesystem);
        let watch = local
            .iter()
            .find(|f| f.key == "watch_paths")
            .expect("watch_paths");
        assert_eq!(watch.kind, Kind::Lines);
        assert!(watch.required);
        assert!(
            local.iter().any(|f| f.key == "file_patterns"),
            "the flattened filter settings are there: {local:?}"
        );
        assert_eq!(
            local
                .iter()
                .find(|f| f.key == "include_hidden")
                .map(|f| f.kind),
            Some(Kind::Boolean)
        );
    }

    #[test]
    fn sent_values_are_typed_and_checked() {
        let fields = fields(SourceType::LocalFilesystem);
        let sent = BTreeMap::from([
            ("cfg.watch_paths".to_string(), "/a\r\n\r\n/b ".to_string()),
            ("cfg.include_hidden".to_string(), "on".to_string()),
            ("cfg.file_patterns".to_string(), String::new()),
        ]);
        let table = settings(&fields, &sent).expect("valid");
        assert_eq!(
            table["watch_paths"],
            toml::Value::Array(vec!["/a".into(), "/b".into()])
        );
        assert_eq!(table["include_hidden"], toml::Value::Boolean(true));
        assert!(!table.contains_key("file_patterns"), "empty means default");
        let integer = fields.iter().find(|f| f.kind == Kind::Integer);
        if let Some(f) = integer {
            let sent = BTreeMap::from([(format!("cfg.{}", f.key), "many".to_string())]);
            assert_eq!(settings(&fields, &sent).unwrap_err().0, f.key);
        }
    }

    #[test]
    fn errors_are_placed_beside_their_field() {
        let fields = fields(SourceType::LocalFilesystem);
        assert_eq!(
            field_named("source x: missing field `watch_paths`", &fields),
            Some("watch_paths")
        );
        assert_eq!(field_named("something else went wrong", &fields), None);
    }
}
