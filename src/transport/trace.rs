//! The trace a request belongs to, for the audit record.

use tonic::metadata::MetadataMap;

/// The trace id of a W3C `traceparent` header (`00-<trace-id>-<parent-id>-<flags>`), if the
/// caller sent a well-formed one.
pub fn trace_id(metadata: &MetadataMap) -> Option<String> {
    crate::telemetry::traceparent_trace_id(metadata.get("traceparent")?.to_str().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert("traceparent", value.parse().unwrap());
        metadata
    }

    #[test]
    fn reads_the_trace_id_of_a_traceparent() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            trace_id(&with(header)).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(trace_id(&MetadataMap::new()), None);
        assert_eq!(trace_id(&with("00-short-00f067aa0ba902b7-01")), None);
        assert_eq!(
            trace_id(&with(
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
            )),
            None
        );
    }
}
