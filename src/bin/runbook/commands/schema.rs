//! `runbook schema`: print the JSON Schema of a runbook, feedback or lesson file.

use std::process::ExitCode;

use crate::cli::{Schema, SchemaKind};
use crate::shared::Failure;

/// `runbook schema [DOCUMENT]`: the schema on stdout.
pub fn exec(args: Schema) -> Result<ExitCode, Failure> {
    print!(
        "{}",
        match args.document {
            SchemaKind::Runbook => runbook::json_schema(),
            SchemaKind::Feedback => runbook::feedback_json_schema(),
            SchemaKind::Lesson => runbook::lesson_json_schema(),
        }
    );
    Ok(ExitCode::SUCCESS)
}
