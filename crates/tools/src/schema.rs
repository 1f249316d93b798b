//! Validation of a call's arguments against its tool's input schema, before execution. A
//! violation is an error result for the model, never a crash.

/// Checks `arguments` against `schema`; the error says what is wrong in words a model can
/// act on.
pub fn check_arguments(schema: &serde_json::Value, arguments: &serde_json::Value) -> Result<(), String> {
    let Some(object) = arguments.as_object() else {
        return Err(format!("arguments must be a JSON object, got {arguments}"));
    };
    if let Some(required) = schema.get("required").and_then(|r| r.as_array()) {
        let missing: Vec<&str> = required
            .iter()
            .filter_map(|r| r.as_str())
            .filter(|r| !object.contains_key(*r))
            .collect();
        if !missing.is_empty() {
            return Err(format!("missing required argument(s): {}", missing.join(", ")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_basics() {
        let schema = serde_json::json!({"type": "object", "required": ["path"]});
        assert!(check_arguments(&schema, &serde_json::json!({"path": "a"})).is_ok());
        assert_eq!(
            check_arguments(&schema, &serde_json::json!({})).unwrap_err(),
            "missing required argument(s): path"
        );
        assert!(check_arguments(&schema, &serde_json::json!([1])).is_err());
    }
}
