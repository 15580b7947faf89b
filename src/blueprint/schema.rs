//! The JSON Schema of blueprint files (`securecart schema`), assembled from each kind's
//! field schema so that editors complete and check blueprints.

use serde_json::{json, Map, Value as Json};

use super::Catalog;

pub fn blueprint_schema(catalog: &dyn Catalog) -> Json {
    let mut defs = Map::new();
    let mut variants = Vec::new();
    for kind in catalog.kinds() {
        let mut s = catalog.schema(kind);
        // Each kind's own definitions move under a prefixed name so two kinds never clash.
        if let Some(Json::Object(kd)) = s.as_object_mut().and_then(|o| o.remove("$defs")) {
            for (name, def) in kd {
                defs.insert(format!("{kind}.{name}"), rewrite_refs(def, kind));
            }
        }
        let mut s = rewrite_refs(s, kind);
        if let Some(o) = s.as_object_mut() {
            o.remove("$schema");
            o.remove("title");
            let props = o
                .entry("properties")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("object schema");
            props.insert("type".into(), json!({ "const": kind }));
            props.insert(
                "depends_on".into(),
                json!({ "type": "array", "items": { "type": "string" }, "description": "Resources that must be ready first, besides those referenced." }),
            );
            let req = o.entry("required").or_insert_with(|| json!([]));
            if let Some(r) = req.as_array_mut() {
                r.push(json!("type"));
            }
        }
        defs.insert(format!("kind.{kind}"), s);
        variants.push(json!({
            "if": { "properties": { "type": { "const": kind } }, "required": ["type"] },
            "then": { "$ref": format!("#/$defs/kind.{kind}") }
        }));
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "securecart blueprint",
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "resources"],
        "properties": {
            "name": { "type": "string", "pattern": "^[A-Za-z][A-Za-z0-9-]{0,39}$", "description": "Default stack name." },
            "description": { "type": "string" },
            "parameters": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "type": { "enum": ["string", "number", "boolean"] },
                        "default": {},
                        "description": { "type": "string" },
                        "secret": { "type": "boolean", "description": "Never printed; shown as (sensitive)." },
                        "allowed": { "type": "array" }
                    }
                }
            },
            "resources": {
                "type": "object",
                "propertyNames": { "pattern": "^[A-Za-z][A-Za-z0-9_-]{0,63}$" },
                "additionalProperties": {
                    "type": "object",
                    "required": ["type"],
                    "properties": { "type": { "enum": catalog.kinds() } },
                    "allOf": variants
                }
            },
            "outputs": {
                "type": "object",
                "additionalProperties": {
                    "anyOf": [
                        { "type": ["string", "number", "boolean"] },
                        { "type": "object", "required": ["value"], "additionalProperties": false,
                          "properties": { "value": {}, "description": { "type": "string" }, "sensitive": { "type": "boolean" } } }
                    ]
                }
            }
        },
        "$defs": defs
    })
}

fn rewrite_refs(v: Json, kind: &str) -> Json {
    match v {
        Json::Object(m) => Json::Object(
            m.into_iter()
                .map(|(k, v)| match (k.as_str(), &v) {
                    ("$ref", Json::String(r)) => {
                        let r = r.replace("#/$defs/", &format!("#/$defs/{kind}."));
                        (k, Json::String(r))
                    }
                    _ => (k, rewrite_refs(v, kind)),
                })
                .collect(),
        ),
        Json::Array(a) => Json::Array(a.into_iter().map(|v| rewrite_refs(v, kind)).collect()),
        other => other,
    }
}
