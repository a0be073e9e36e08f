//! `runbook sandbox`: list, destroy, reap sandboxes, and run a command in a kept one.

use std::process::ExitCode;

use runbook::exec::{Provider, RunOptions, Session};

use crate::cli::{Sandbox, SandboxCommand};
use crate::shared::{Failure, provider};

/// `runbook sandbox list|destroy|reap|exec`, with the provider the flags choose.
pub async fn exec(args: Sandbox) -> Result<ExitCode, Failure> {
    let Sandbox {
        sandbox: which,
        command,
    } = args;
    let p = provider(&which, false).await?;
    sandbox(p.as_ref(), command).await
}

async fn sandbox(provider: &dyn Provider, command: SandboxCommand) -> Result<ExitCode, Failure> {
    match command {
        SandboxCommand::Exec { id, command } => sandbox_exec(provider, &id, &command).await,
        SandboxCommand::List => {
            let list = provider.list().await?;
            if list.is_empty() {
                eprintln!("no sandboxes");
                return Ok(ExitCode::SUCCESS);
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            println!(
                "{:<28} {:<16} {:<20} {:>6}  {:<8} {:<10} WHERE",
                "ID", "RUNBOOK", "LAST STEP", "AGE", "PROVIDER", "LIFETIME"
            );
            for s in list {
                println!(
                    "{:<28} {:<16} {:<20} {:>6}  {:<8} {:<10} {}",
                    s.id,
                    s.runbook,
                    s.last_step.as_deref().unwrap_or("-"),
                    age(now.saturating_sub(s.created_unix)),
                    s.provider,
                    match &s.damaged {
                        Some(why) => format!("DAMAGED: {why}"),
                        None => s.lifetime.to_string(),
                    },
                    s.location.as_deref().unwrap_or("-")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        SandboxCommand::Reap => {
            let reaped = provider.reap().await?;
            if reaped.destroyed.is_empty() && reaped.skipped.is_empty() {
                eprintln!("nothing to reap");
            }
            for id in &reaped.destroyed {
                eprintln!("reaped {id}");
            }
            for (id, why) in &reaped.skipped {
                eprintln!("left {id}: {why}");
            }
            Ok(ExitCode::SUCCESS)
        }
        SandboxCommand::Destroy { id, all } => {
            let ids: Vec<String> = if all {
                provider.list().await?.into_iter().map(|s| s.id).collect()
            } else {
                id.into_iter().collect()
            };
            // Every sandbox is tried: a busy or broken one does not stop the others.
            let mut failed = 0;
            for id in ids {
                match provider.destroy(&id).await {
                    Ok(()) => eprintln!("destroyed {id}"),
                    Err(e) => {
                        failed += 1;
                        eprintln!("error: {id}: {e}");
                    }
                }
            }
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// `runbook sandbox exec`: a command in a kept sandbox, its output as it would be in a
/// step's record (secrets masked), its exit code as ours.
async fn sandbox_exec(
    provider: &dyn Provider,
    id: &str,
    command: &[String],
) -> Result<ExitCode, Failure> {
    let text = match command {
        [one] => one.clone(),
        many => many
            .iter()
            .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
            .collect::<Vec<_>>()
            .join(" "),
    };
    let mut session = Session::resume(provider, id, None, RunOptions::default())
        .await
        .map_err(|e| match e {
            runbook::exec::ExecError::NotFound(_) => Failure(format!(
                "no sandbox `{id}`: `runbook sandbox list` shows those there are"
            )),
            runbook::exec::ExecError::NotPersistent { .. } => Failure(format!(
                "sandbox `{id}` is not kept, so it cannot be entered: run with --keep (a persistent sandbox) to look around after a run"
            )),
            e => e.into(),
        })?;
    let out = session
        .exec(&text, std::time::Duration::from_secs(600))
        .await?;
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    Ok(match out.exit_code {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::from(137),
    })
}

/// An age in its largest whole unit: `42s`, `5m`, `3h`, `2d`.
fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
