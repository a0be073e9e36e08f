//! The JSON Schema of `runbook.yaml`, for editors and downstream tools.

/// The JSON Schema (draft 2020-12) of the runbook format, pretty-printed.
///
/// ```
/// let schema = runbook_core::json_schema();
/// assert!(schema.contains("\"apiVersion\""));
/// ```
pub fn json_schema() -> String {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<crate::Runbook>();
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
