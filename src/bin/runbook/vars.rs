//! Variable values from `--var`, `--var-file` (or `$RUNBOOK_VAR_FILE`) and `--secret`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use runbook::Runbook;

use crate::cli::{VarArgs, parse_name};
use crate::shared::Failure;

impl VarArgs {
    /// Every value given, from the files, the environment or stdin (`--secret`), and the
    /// command line; a variable given twice is an error naming both places.
    pub fn values(&self) -> Result<BTreeMap<String, String>, Failure> {
        let files = if self.var_files.is_empty() {
            std::env::var_os("RUNBOOK_VAR_FILE")
                .filter(|f| !f.is_empty())
                .map(PathBuf::from)
                .into_iter()
                .collect()
        } else {
            self.var_files.clone()
        };
        let mut values: BTreeMap<String, (String, String)> = BTreeMap::new();
        let mut add = |name: String, value: String, from: String| match values.get(&name) {
            Some((_, first)) => Err(Failure(format!(
                "variable `{name}` is given twice: {first} and {from}"
            ))),
            None => {
                values.insert(name, (value, from));
                Ok(())
            }
        };
        for file in &files {
            for (line, name, value) in read_var_file(file)? {
                add(name, value, format!("{}:{line}", file.display()))?;
            }
        }
        for name in &self.secrets {
            let value = match std::env::var(name) {
                Ok(value) => value,
                Err(_) => read_secret_line(name)?,
            };
            add(name.clone(), value, format!("--secret {name}"))?;
        }
        for (name, value) in &self.vars {
            add(name.clone(), value.clone(), format!("--var {name}"))?;
        }
        Ok(values.into_iter().map(|(k, (v, _))| (k, v)).collect())
    }

    /// Warns, by name, of each secret of `runbook` whose value came by `--var`: on the
    /// command line, where every user of the machine can read it.
    pub fn warn_exposed(&self, runbook: &Runbook) {
        for (name, _) in &self.vars {
            if runbook
                .variables
                .iter()
                .any(|v| v.name == *name && v.hides_value())
            {
                eprintln!(
                    "warning: --var {name}: `{name}` is a secret, and a value on the command line \
                     can be read by every user of this machine (ps, /proc/PID/cmdline); give it \
                     with --secret {name} (from the environment or stdin) or --var-file"
                );
            }
        }
    }
}

/// The `NAME=VALUE` lines of a variables file, with their line numbers. Errors name the
/// file and line, never a value.
fn read_var_file(file: &Path) -> Result<Vec<(usize, String, String)>, Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure(format!("--var-file `{}`: {e}", file.display())))?;
    let mut values = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = || format!("{}:{}", file.display(), i + 1);
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((name, value)) = trimmed.split_once('=') else {
            return Err(Failure(format!(
                "{}: expected NAME=VALUE (or a `#` comment)",
                at()
            )));
        };
        let name = parse_name(name.trim_end()).map_err(|e| Failure(format!("{}: {e}", at())))?;
        values.push((i + 1, name, value.to_owned()));
    }
    Ok(values)
}

/// One line of stdin, the value of `--secret NAME`; on a terminal, asked for without echo.
fn read_secret_line(name: &str) -> Result<String, Failure> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    use std::io::BufRead;
    let stdin = std::io::stdin();
    let saved = if stdin.is_terminal() {
        eprint!("{name} (not echoed): ");
        let saved = tcgetattr(&stdin).ok();
        if let Some(mut quiet) = saved.clone() {
            quiet.local_flags.remove(LocalFlags::ECHO);
            let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
        }
        saved
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
        eprintln!();
    }
    match read {
        Ok(0) => Err(Failure(format!(
            "--secret {name}: `{name}` is not in the environment and stdin has no line for it"
        ))),
        Ok(_) => Ok(line.trim_end_matches(['\n', '\r']).to_owned()),
        Err(e) => Err(Failure(format!("--secret {name}: cannot read stdin: {e}"))),
    }
}
