//! `runbook new`: write a starter runbook that lints clean.

use std::process::ExitCode;

use runbook::Diagnostic;

use crate::cli::New;
use crate::shared::Failure;

const STARTER: &str = include_str!("../starter.yaml");

/// `runbook new NAME`: the starter runbook named NAME, written to a file that must not exist.
pub fn exec(args: New) -> Result<ExitCode, Failure> {
    let New { name, out } = args;
    let text = STARTER.replace("NAME", &name);
    let rb = runbook::from_yaml_str(&text)
        .map_err(|e| Failure(format!("`{name}` cannot be a runbook name: {e}")))?;
    if let Some(d) = rb.lint().into_iter().find(Diagnostic::is_error) {
        return Err(Failure(format!(
            "`{name}` cannot be a runbook name: {}",
            d.message
        )));
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&out);
    match file {
        Ok(mut f) => std::io::Write::write_all(&mut f, text.as_bytes())?,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Failure(format!(
                "`{}` already exists; choose another path with --out",
                out.display()
            )));
        }
        Err(e) => return Err(Failure(format!("cannot write `{}`: {e}", out.display()))),
    }
    eprintln!(
        "wrote {}: edit it, then `runbook validate {}` and `runbook run {}`",
        out.display(),
        out.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
