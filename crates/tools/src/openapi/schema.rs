//! OpenAPI schemas → the JSON Schema (2020-12) of a tool's arguments. Pure: no I/O.
//!
//! - Local `$ref`s are inlined (models follow an inlined schema far better than `$defs`),
//!   each referenced schema converted once and reused. A reference back into a schema being
//!   expanded (a cycle, e.g. a tree node's `children`) becomes an open schema saying so, and
//!   so does anything beyond [`MAX_REF_DEPTH`] nested references or [`MAX_SCHEMA_NODES`]
//!   schema objects per argument: the API still validates what it receives.
//! - `allOf` is merged into one object schema (properties, `required`, `type`); constraints
//!   that cannot be merged stay in a residual `allOf`, so the meaning never widens.
//! - OpenAPI 3.0's dialect becomes JSON Schema: `nullable`, boolean `exclusiveMinimum` /
//!   `exclusiveMaximum`, `example`; `discriminator`, `xml`, `externalDocs` and `x-*`
//!   extensions are dropped; `readOnly` properties are removed (they are never sent).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::spec::{Doc, SpecVersion};

/// Most references expanded inside one another.
pub const MAX_REF_DEPTH: usize = 24;
/// Most schema objects in one argument's schema; past it, references are left open.
pub const MAX_SCHEMA_NODES: usize = 20_000;

/// Converts schemas of one document, caching every referenced schema whose expansion did
/// not depend on where it was reached from (no cycle or limit cut it short).
pub struct SchemaConverter {
    version: SpecVersion,
    cache: HashMap<String, (Value, usize)>,
    stack: Vec<String>,
    nodes: usize,
}

impl SchemaConverter {
    /// A converter for a document of `version`.
    pub fn new(version: SpecVersion) -> Self {
        SchemaConverter {
            version,
            cache: HashMap::new(),
            stack: Vec::new(),
            nodes: 0,
        }
    }

    /// The JSON Schema for `schema` (found at `_pointer` in `doc`). References that do not
    /// resolve were reported by the document check; here they become open schemas.
    pub(crate) fn convert(&mut self, doc: &Doc<'_>, schema: &Value, _pointer: &str) -> Value {
        self.nodes = 0;
        self.stack.clear();
        self.walk(doc, schema).0
    }

    /// The converted schema, and whether a cycle or limit cut it short.
    fn walk(&mut self, doc: &Doc<'_>, schema: &Value) -> (Value, bool) {
        let map = match schema {
            Value::Object(map) => map,
            Value::Bool(accept) => {
                self.nodes += 1;
                return (Value::Bool(*accept), false);
            }
            _ => return (json!({}), false),
        };
        self.nodes += 1;
        if self.nodes > MAX_SCHEMA_NODES {
            return (
                json!({"description": format!("(not expanded: the schema has more than {MAX_SCHEMA_NODES} parts)")}),
                true,
            );
        }
        let Some(Value::String(reference)) = map.get("$ref") else {
            return self.walk_object(doc, map);
        };
        let (expanded, cut) = self.expand(doc, reference);
        // OpenAPI 3.0 ignores a reference's siblings; in 3.1 (JSON Schema) they apply too.
        let siblings: Map<String, Value> = map
            .iter()
            .filter(|(k, _)| k.as_str() != "$ref" && !k.starts_with("x-"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if self.version == SpecVersion::V30 || siblings.is_empty() {
            return (expanded, cut);
        }
        let (Value::Object(mut merged), sibling_cut) = self.walk_object(doc, &siblings) else {
            return (expanded, cut);
        };
        match expanded {
            Value::Object(part) => {
                let residual = merge_into(&mut merged, part);
                push_residual(&mut merged, residual);
            }
            other => push_residual_value(&mut merged, other),
        }
        (Value::Object(merged), cut || sibling_cut)
    }

    fn expand(&mut self, doc: &Doc<'_>, reference: &str) -> (Value, bool) {
        let Ok((target, pointer)) = doc.lookup(reference) else {
            return (json!({}), false);
        };
        if let Some((value, nodes)) = self.cache.get(&pointer) {
            if self.nodes + nodes > MAX_SCHEMA_NODES {
                return (
                    json!({"description": format!("(not expanded: the schema has more than {MAX_SCHEMA_NODES} parts)")}),
                    true,
                );
            }
            self.nodes += nodes;
            return (value.clone(), false);
        }
        if self.stack.contains(&pointer) {
            return (
                json!({"description": format!("(a recursive reference to {reference}; not expanded again)")}),
                true,
            );
        }
        if self.stack.len() >= MAX_REF_DEPTH {
            return (
                json!({"description": format!("(not expanded: more than {MAX_REF_DEPTH} nested references)")}),
                true,
            );
        }
        self.stack.push(pointer.clone());
        let before = self.nodes;
        let (value, cut) = self.walk(doc, target);
        self.stack.pop();
        if !cut {
            self.cache.insert(pointer, (value.clone(), self.nodes - before));
        }
        (value, cut)
    }

    fn walk_object(&mut self, doc: &Doc<'_>, map: &Map<String, Value>) -> (Value, bool) {
        let mut out = Map::new();
        let mut cut = false;
        for (key, value) in map {
            if key.starts_with("x-") {
                continue;
            }
            match key.as_str() {
                "$ref" | "nullable" | "discriminator" | "xml" | "externalDocs" | "$schema" | "$id" | "$anchor"
                | "$dynamicAnchor" | "$dynamicRef" | "$comment" => {}
                "example" => {
                    if !map.contains_key("examples") {
                        out.insert("examples".into(), Value::Array(vec![value.clone()]));
                    }
                }
                "examples" if !value.is_array() => {}
                "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas" => {
                    let Value::Object(children) = value else {
                        continue;
                    };
                    let mut converted = Map::new();
                    for (name, child) in children {
                        let (child, child_cut) = self.walk(doc, child);
                        cut |= child_cut;
                        converted.insert(name.clone(), child);
                    }
                    out.insert(key.clone(), Value::Object(converted));
                }
                "items"
                | "additionalProperties"
                | "not"
                | "contains"
                | "propertyNames"
                | "if"
                | "then"
                | "else"
                | "unevaluatedProperties"
                | "unevaluatedItems"
                | "additionalItems"
                | "contentSchema" => {
                    let converted = match value {
                        Value::Array(items) => {
                            // Tuple `items` (draft 4–2019): 2020-12 calls it prefixItems.
                            let mut converted = Vec::new();
                            for item in items {
                                let (item, item_cut) = self.walk(doc, item);
                                cut |= item_cut;
                                converted.push(item);
                            }
                            out.insert("prefixItems".into(), Value::Array(converted));
                            continue;
                        }
                        other => {
                            let (converted, child_cut) = self.walk(doc, other);
                            cut |= child_cut;
                            converted
                        }
                    };
                    out.insert(key.clone(), converted);
                }
                "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                    let Value::Array(items) = value else {
                        continue;
                    };
                    let mut converted = Vec::new();
                    for item in items {
                        let (item, item_cut) = self.walk(doc, item);
                        cut |= item_cut;
                        converted.push(item);
                    }
                    out.insert(key.clone(), Value::Array(converted));
                }
                _ => {
                    out.insert(key.clone(), value.clone());
                }
            }
        }
        if self.version == SpecVersion::V30 {
            for (bound, flag) in [("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")] {
                match out.get(flag) {
                    Some(Value::Bool(true)) => match out.remove(bound) {
                        Some(limit) => {
                            out.insert(flag.into(), limit);
                        }
                        None => {
                            out.remove(flag);
                        }
                    },
                    Some(Value::Bool(false)) => {
                        out.remove(flag);
                    }
                    _ => {}
                }
            }
            if map.get("nullable") == Some(&Value::Bool(true)) {
                allow_null(&mut out);
            }
        }
        strip_read_only(&mut out);
        if let Some(Value::Array(parts)) = out.remove("allOf") {
            out = merge_all_of(out, parts);
        }
        (Value::Object(out), cut)
    }
}

/// `nullable: true` (3.0): `null` joins the types and the enum.
fn allow_null(schema: &mut Map<String, Value>) {
    match schema.get_mut("type") {
        Some(Value::String(single)) if single != "null" => {
            let single = std::mem::take(single);
            schema.insert("type".into(), json!([single, "null"]));
        }
        Some(Value::Array(types)) if !types.iter().any(|t| t == "null") => types.push(json!("null")),
        _ => {}
    }
    if let Some(Value::Array(values)) = schema.get_mut("enum")
        && !values.contains(&Value::Null)
    {
        values.push(Value::Null);
    }
}

/// Read-only properties are set by the server; a request never carries them.
fn strip_read_only(schema: &mut Map<String, Value>) {
    let Some(Value::Object(properties)) = schema.get_mut("properties") else {
        return;
    };
    let read_only: Vec<String> = properties
        .iter()
        .filter(|(_, s)| s.get("readOnly") == Some(&Value::Bool(true)))
        .map(|(name, _)| name.clone())
        .collect();
    if read_only.is_empty() {
        return;
    }
    for name in &read_only {
        properties.remove(name);
    }
    if let Some(Value::Array(required)) = schema.get_mut("required") {
        required.retain(|r| !read_only.iter().any(|name| r == name));
    }
}

/// `base` with each of `parts` merged in; what cannot be merged stays as `allOf`.
fn merge_all_of(mut base: Map<String, Value>, parts: Vec<Value>) -> Map<String, Value> {
    for part in parts {
        match part {
            Value::Object(part) => {
                let residual = merge_into(&mut base, part);
                push_residual(&mut base, residual);
            }
            Value::Bool(true) => {}
            other => push_residual_value(&mut base, other),
        }
    }
    base
}

fn push_residual(target: &mut Map<String, Value>, residual: Map<String, Value>) {
    if !residual.is_empty() {
        push_residual_value(target, Value::Object(residual));
    }
}

fn push_residual_value(target: &mut Map<String, Value>, value: Value) {
    match target.get_mut("allOf") {
        Some(Value::Array(items)) => items.push(value),
        _ => {
            target.insert("allOf".into(), Value::Array(vec![value]));
        }
    }
}

/// Keywords that only describe; on a clash the first schema's is kept.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "examples",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
    "format",
    "contentMediaType",
    "contentEncoding",
];

/// Merges `part` into `target` (both converted schemas). Returns the constraints of `part`
/// that could not be merged without changing their meaning.
fn merge_into(target: &mut Map<String, Value>, part: Map<String, Value>) -> Map<String, Value> {
    let mut residual = Map::new();
    for (key, value) in part {
        if !target.contains_key(&key) {
            target.insert(key, value);
            continue;
        }
        let Some(existing) = target.get_mut(&key) else {
            continue;
        };
        if *existing == value {
            continue;
        }
        match key.as_str() {
            "properties" => match (existing, value) {
                (Value::Object(mine), Value::Object(theirs)) => {
                    for (name, schema) in theirs {
                        match mine.get_mut(&name) {
                            None => {
                                mine.insert(name, schema);
                            }
                            Some(old) if *old == schema => {}
                            Some(old) => *old = combine(std::mem::take(old), schema),
                        }
                    }
                }
                (_, value) => {
                    residual.insert(key, value);
                }
            },
            "required" => {
                if let (Value::Array(mine), Value::Array(theirs)) = (existing, &value) {
                    for name in theirs {
                        if !mine.contains(name) {
                            mine.push(name.clone());
                        }
                    }
                } else {
                    residual.insert(key, value);
                }
            }
            "type" => match intersect_types(existing, &value) {
                Some(types) => *existing = types,
                None => {
                    residual.insert(key, value);
                }
            },
            "allOf" => {
                if let (Value::Array(mine), Value::Array(theirs)) = (existing, value) {
                    mine.extend(theirs);
                }
            }
            "additionalProperties" if value == Value::Bool(false) => *existing = Value::Bool(false),
            "additionalProperties" if *existing == Value::Bool(false) => {}
            k if ANNOTATIONS.contains(&k) => {}
            _ => {
                residual.insert(key, value);
            }
        }
    }
    residual
}

fn combine(a: Value, b: Value) -> Value {
    match (a, b) {
        (Value::Object(mut a), Value::Object(b)) => {
            let residual = merge_into(&mut a, b);
            push_residual(&mut a, residual);
            Value::Object(a)
        }
        (a, b) => json!({"allOf": [a, b]}),
    }
}

/// The types both allow (`integer` is a `number`); `None` when none.
fn intersect_types(a: &Value, b: &Value) -> Option<Value> {
    let list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(t) => vec![t.clone()],
            Value::Array(ts) => ts.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect(),
            _ => Vec::new(),
        }
    };
    let (a, b) = (list(a), list(b));
    let mut both: Vec<String> = Vec::new();
    for t in &a {
        let kept = if b.contains(t) {
            Some(t.clone())
        } else if (t == "number" && b.iter().any(|x| x == "integer"))
            || (t == "integer" && b.iter().any(|x| x == "number"))
        {
            Some("integer".to_owned())
        } else {
            None
        };
        if let Some(kept) = kept
            && !both.contains(&kept)
        {
            both.push(kept);
        }
    }
    match both.len() {
        0 => None,
        1 => Some(Value::String(both.remove(0))),
        _ => Some(Value::Array(both.into_iter().map(Value::String).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(version: SpecVersion, root: Value, schema: Value) -> Value {
        let doc = Doc::new(&root, version);
        SchemaConverter::new(version).convert(&doc, &schema, "")
    }

    #[test]
    fn openapi_30_dialect_becomes_json_schema() {
        let schema = json!({
            "type": "integer", "minimum": 0, "exclusiveMinimum": true, "nullable": true,
            "example": 3, "x-internal": true, "xml": {"name": "n"}
        });
        assert_eq!(
            convert(SpecVersion::V30, json!({}), schema),
            json!({"type": ["integer", "null"], "exclusiveMinimum": 0, "examples": [3]})
        );
    }

    #[test]
    fn all_of_merges_and_keeps_what_cannot_merge() {
        let root = json!({"components": {"schemas": {
            "Base": {"type": "object", "properties": {"id": {"type": "integer", "readOnly": true}, "name": {"type": "string"}}, "required": ["id", "name"]},
        }}});
        let schema = json!({"allOf": [
            {"$ref": "#/components/schemas/Base"},
            {"type": "object", "properties": {"tag": {"type": "string", "maxLength": 5}}, "required": ["tag"], "maxProperties": 4},
            {"properties": {"tag": {"minLength": 1}}}
        ]});
        let merged = convert(SpecVersion::V30, root, schema);
        assert_eq!(
            merged,
            json!({
                "type": "object",
                "properties": {"name": {"type": "string"}, "tag": {"type": "string", "maxLength": 5, "minLength": 1}},
                "required": ["name", "tag"],
                "maxProperties": 4
            })
        );
        let clash = convert(
            SpecVersion::V31,
            json!({}),
            json!({"allOf": [{"type": "string"}, {"type": "integer"}]}),
        );
        assert_eq!(clash, json!({"type": "string", "allOf": [{"type": "integer"}]}));
    }

    #[test]
    fn cycles_are_cut_and_shared_schemas_reused() {
        let root = json!({"components": {"schemas": {
            "Node": {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}}},
        }}});
        let out = convert(SpecVersion::V31, root, json!({"$ref": "#/components/schemas/Node"}));
        let inner = &out["properties"]["children"]["items"];
        assert!(
            inner["description"].as_str().unwrap().contains("recursive reference"),
            "{out}"
        );
    }
}
