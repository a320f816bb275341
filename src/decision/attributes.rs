//! Attributes that arrive as JSON (an AuthZEN context, a resource's `properties`), held to the
//! same rules as the task context of the gRPC door: a bounded size and nesting, and only what
//! Cedar can hold. Checked before anything walks them recursively.

use serde_json::{Map, Value};

use super::request::{FieldViolation, Limits};

/// Checks `attributes`, found at `field`: at most `max_context_bytes` as JSON, at most
/// `max_context_depth` levels deep (the top level is 1), no `null` and no number that is not a
/// 64-bit integer.
pub fn check(
    field: &str,
    attributes: &Map<String, Value>,
    limits: &Limits,
) -> Result<(), FieldViolation> {
    // Depth first: the size is measured by serializing, which recurses.
    record(field, attributes, 1, limits)?;
    let size = serde_json::to_vec(attributes).map_or(usize::MAX, |v| v.len());
    if size > limits.max_context_bytes {
        return Err(FieldViolation::new(
            field,
            format!(
                "is {size} bytes of JSON, over the limit of {}",
                limits.max_context_bytes
            ),
        ));
    }
    Ok(())
}

fn too_deep(field: &str, limits: &Limits) -> FieldViolation {
    FieldViolation::new(
        field,
        format!("nests deeper than {} levels", limits.max_context_depth),
    )
}

fn record(
    field: &str,
    map: &Map<String, Value>,
    depth: usize,
    limits: &Limits,
) -> Result<(), FieldViolation> {
    if depth > limits.max_context_depth {
        return Err(too_deep(field, limits));
    }
    for (key, v) in map {
        value(&format!("{field}.{key}"), v, depth, limits)?;
    }
    Ok(())
}

fn value(field: &str, v: &Value, depth: usize, limits: &Limits) -> Result<(), FieldViolation> {
    match v {
        Value::Null => Err(FieldViolation::new(
            field,
            "must not be null: leave the attribute out instead",
        )),
        Value::Number(n) if n.as_i64().is_none() => Err(FieldViolation::new(
            field,
            format!(
                "is `{n}`: numbers must be whole and fit in 64 bits (pass decimals as strings)"
            ),
        )),
        Value::Bool(_) | Value::Number(_) | Value::String(_) => Ok(()),
        Value::Object(map) => record(field, map, depth + 1, limits),
        Value::Array(list) => {
            if depth + 1 > limits.max_context_depth {
                return Err(too_deep(field, limits));
            }
            list.iter()
                .enumerate()
                .try_for_each(|(i, v)| value(&format!("{field}[{i}]"), v, depth + 1, limits))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn cedar_values_pass_and_the_rest_is_named() {
        let limits = Limits::default();
        let ok = map(json!({"a": 1, "b": "x", "c": [true, {"d": -3}]}));
        assert!(check("context", &ok, &limits).is_ok());
        let null = check("context", &map(json!({"a": {"b": null}})), &limits).unwrap_err();
        assert_eq!(null.field, "context.a.b");
        let float = check("context", &map(json!({"a": [1, 2.5]})), &limits).unwrap_err();
        assert_eq!(float.field, "context.a[1]");
        let big = check("p", &map(json!({"n": u64::MAX})), &limits).unwrap_err();
        assert_eq!(big.field, "p.n");
    }

    #[test]
    fn depth_and_size_are_bounded() {
        let limits = Limits {
            max_context_depth: 3,
            max_context_bytes: 40,
            ..Limits::default()
        };
        assert!(check("c", &map(json!({"a": {"b": [1]}})), &limits).is_ok());
        assert!(check("c", &map(json!({"a": {"b": {"c": 1}}})), &limits).is_ok());
        let deep = check("c", &map(json!({"a": {"b": {"c": {"d": 1}}}})), &limits).unwrap_err();
        assert!(deep.description.contains("deeper than 3"), "{deep:?}");
        let list = check("c", &map(json!({"a": {"b": [[1]]}})), &limits).unwrap_err();
        assert_eq!(list.field, "c.a.b[0]");
        let long = check("c", &map(json!({"a": "x".repeat(50)})), &limits).unwrap_err();
        assert!(
            long.description.contains("over the limit of 40"),
            "{long:?}"
        );
    }
}
