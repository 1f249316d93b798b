//! Validation of a call's arguments against its tool's input schema (JSON Schema, any draft
//! the schema declares, 2020-12 by default), before execution. A violation is an error
//! result for the model, never a crash; so is a tool whose own schema is invalid.
//!
//! Compiling a schema costs far more than checking against it, so compiled validators are
//! kept in a process-wide cache keyed by the schema itself ([`check_arguments`]), or held
//! by the caller ([`CompiledSchema`]). References are never fetched: a `$ref` to anything
//! outside the schema is an invalid schema, not a network request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

/// Most violations listed in one error; the rest are counted.
pub const MAX_REPORTED_VIOLATIONS: usize = 20;
/// Longest description of one violation, in characters (a violation quotes the offending
/// value, which may be huge).
pub const MAX_VIOLATION_CHARS: usize = 300;
/// Most compiled schemas kept by [`check_arguments`]; the cache is emptied when full
/// (schemas come from registered tools, so it refills with the ones in use).
pub const MAX_CACHED_SCHEMAS: usize = 1024;

/// A tool's input schema, compiled once and checked many times.
#[derive(Clone)]
pub struct CompiledSchema {
    validator: Arc<jsonschema::Validator>,
}

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledSchema").finish_non_exhaustive()
    }
}

impl CompiledSchema {
    /// Compiles `schema`. The error says why the schema itself is invalid.
    pub fn compile(schema: &Value) -> Result<CompiledSchema, String> {
        // The validator is third-party code fed by third-party schemas (MCP servers): a
        // panic while compiling one must become an error for that tool, not take the node
        // down. Nothing is shared across the boundary, so unwinding leaves no broken state.
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            jsonschema::options().offline().build(schema)
        }));
        match built {
            Ok(Ok(validator)) => Ok(CompiledSchema {
                validator: Arc::new(validator),
            }),
            Ok(Err(error)) => Err(format!(
                "the tool's input schema is invalid ({}); the tool cannot be called until its source fixes the schema",
                clip(&error.to_string())
            )),
            Err(_) => Err(
                "the tool's input schema could not be compiled (the validator failed on it); \
                 the tool cannot be called until its source fixes the schema"
                    .to_owned(),
            ),
        }
    }

    /// Checks `arguments`: every violation, each with the JSON pointer of the offending
    /// value (`at /path: 3 is not of type "string"`).
    pub fn check(&self, arguments: &Value) -> Result<(), String> {
        if !arguments.is_object() {
            return Err(format!(
                "arguments must be a JSON object, got {}",
                clip(&arguments.to_string())
            ));
        }
        if self.validator.is_valid(arguments) {
            return Ok(());
        }
        let mut problems = Vec::new();
        let mut total = 0usize;
        for error in self.validator.iter_errors(arguments) {
            total += 1;
            if problems.len() < MAX_REPORTED_VIOLATIONS {
                let pointer = error.instance_path().as_str().to_owned();
                let place = if pointer.is_empty() {
                    "at the top level".to_owned()
                } else {
                    format!("at {pointer}")
                };
                problems.push(format!("{place}: {}", clip(&error.to_string())));
            }
        }
        let mut message = match problems.len() {
            0 => "the arguments do not match the tool's input schema".to_owned(),
            1 => problems.remove(0),
            n => format!("{n} problems: {}", problems.join("; ")),
        };
        if total > problems.len().max(1) {
            message.push_str(&format!("; and {} more", total - problems.len().max(1)));
        }
        Err(message)
    }
}

type Cache = Mutex<HashMap<Value, Result<CompiledSchema, String>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The compiled form of `schema`, from the process-wide cache (compiled on first use). An
/// invalid schema is cached too, so it is reported without being recompiled every call.
pub fn compiled(schema: &Value) -> Result<CompiledSchema, String> {
    if let Some(found) = lock(cache()).get(schema) {
        return found.clone();
    }
    // Compile outside the lock: two threads may compile the same schema once each, which
    // is cheaper than making every other check wait behind a compilation.
    let result = CompiledSchema::compile(schema);
    let mut cache = lock(cache());
    if cache.len() >= MAX_CACHED_SCHEMAS {
        cache.clear();
    }
    cache.insert(schema.clone(), result.clone());
    result
}

fn lock(cache: &Cache) -> std::sync::MutexGuard<'_, HashMap<Value, Result<CompiledSchema, String>>> {
    // A panic while holding the lock cannot leave the map half-updated (insert and clear
    // are single calls), so a poisoned lock is safe to keep using.
    cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Checks `arguments` against `schema`; the error lists every violation with its JSON
/// pointer, in words a model can act on. An invalid `schema` is an error, not a panic.
pub fn check_arguments(schema: &Value, arguments: &Value) -> Result<(), String> {
    compiled(schema)?.check(arguments)
}

fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_VIOLATION_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "minLength": 1},
                "content": {"type": "string"},
                "mode": {"enum": ["replace", "append"]},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["path", "content"],
            "additionalProperties": false
        })
    }

    #[test]
    fn valid_arguments_pass() {
        let args = json!({"path": "a.md", "content": "hi", "tags": ["x"]});
        assert_eq!(check_arguments(&write_schema(), &args), Ok(()));
    }

    #[test]
    fn every_violation_is_listed_with_its_pointer() {
        let args = json!({"path": 3, "mode": "delete", "tags": ["ok", 7], "extra": true});
        let error = check_arguments(&write_schema(), &args).unwrap_err();
        for expected in [
            "at /path: 3 is not of type \"string\"",
            "at /tags/1: 7 is not of type \"string\"",
            "at /mode:",
            "at the top level: \"content\" is a required property",
            "at the top level: Additional properties are not allowed ('extra' was unexpected)",
        ] {
            assert!(error.contains(expected), "missing {expected:?} in {error}");
        }
        assert!(error.starts_with("5 problems: "), "{error}");
    }

    #[test]
    fn a_single_missing_argument_reads_plainly() {
        let error = check_arguments(&write_schema(), &json!({"path": "a"})).unwrap_err();
        assert_eq!(error, "at the top level: \"content\" is a required property");
    }

    #[test]
    fn non_objects_are_refused() {
        let error = check_arguments(&write_schema(), &json!([1])).unwrap_err();
        assert_eq!(error, "arguments must be a JSON object, got [1]");
    }

    #[test]
    fn an_invalid_schema_is_an_error_not_a_crash() {
        let broken = json!({"type": "object", "properties": {"n": {"type": "not-a-type"}}});
        let first = check_arguments(&broken, &json!({"n": 1})).unwrap_err();
        assert!(first.contains("input schema is invalid"), "{first}");
        // Cached: the same answer again, without recompiling.
        assert_eq!(check_arguments(&broken, &json!({"n": 1})).unwrap_err(), first);
        let remote = json!({"$ref": "https://example.com/schema.json"});
        assert!(
            CompiledSchema::compile(&remote)
                .unwrap_err()
                .contains("input schema is invalid")
        );
    }

    #[test]
    fn long_values_are_clipped_and_many_violations_counted() {
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
        let error = check_arguments(&schema, &json!({"n": "x".repeat(5000)})).unwrap_err();
        assert!(error.chars().count() < MAX_VIOLATION_CHARS + 40, "{error}");

        let items = json!({"type": "object", "properties": {"xs": {"type": "array", "items": {"type": "string"}}}});
        let many: Vec<i64> = (0..50).collect();
        let error = check_arguments(&items, &json!({"xs": many})).unwrap_err();
        assert!(
            error.starts_with(&format!("{MAX_REPORTED_VIOLATIONS} problems: ")),
            "{error}"
        );
        assert!(
            error.ends_with(&format!("; and {} more", 50 - MAX_REPORTED_VIOLATIONS)),
            "{error}"
        );
    }

    #[test]
    fn a_compiled_schema_checks_like_the_cache() {
        let compiled = CompiledSchema::compile(&write_schema()).unwrap();
        let args = json!({"path": ""});
        assert_eq!(compiled.check(&args), check_arguments(&write_schema(), &args));
    }
}
