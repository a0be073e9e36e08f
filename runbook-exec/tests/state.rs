//! The session's state machine (docs/agents.md draws it) and the look inside, with the
//! local provider: giving up after a failure, redoing an earlier step, a dropped call, and
//! reading what a failed step wrote.

mod common;

use std::time::Duration;

use common::{processes_with, provider, wait_for};
use runbook_core::report::{FailureKind, RollbackPurpose, StepStatus, Verdict};
use runbook_core::{Category, Check, KnownIssue, Lifetime, Runbook, SecretSource, Step, Variable};
use runbook_exec::{Amendment, ExecError, Phase, READ_LIMIT, RunOptions, Session};

fn options() -> RunOptions {
    RunOptions {
        lifetime: Some(Lifetime::Session),
        ..RunOptions::default()
    }
}

/// `write-config` writes a mode `serve` refuses; each step can be undone.
fn two_steps() -> Runbook {
    Runbook::builder("state")
        .step(
            Step::new("write-config", "Write the config")
                .run("echo 'mode=old' > app.conf")
                .verify(Check::command("test -s app.conf").exit_code(0))
                .rollback("rm app.conf"),
        )
        .step(
            Step::new("serve", "Serve")
                .run("grep -q 'mode=new' app.conf || { echo 'error: mode=old is not supported' >&2; exit 1; }")
                .verify(Check::command("true").exit_code(0))
                .rollback("true"),
        )
        .build()
        .unwrap()
        .runbook
}

#[tokio::test]
async fn giving_up_after_a_failure_is_failed_and_keeps_the_failure() {
    let (_root, provider) = provider();
    let mut session = Session::start(&provider, two_steps(), options())
        .await
        .unwrap();
    let first = session.run_next().await.unwrap().unwrap();
    assert_eq!(first.status, StepStatus::Passed);
    let failed = session.run_next().await.unwrap().unwrap();
    assert_eq!(failed.status, StepStatus::Failed);
    assert_eq!(session.phase(), Phase::Failed);

    let restore = session.rollback().await.unwrap().clone();
    assert_eq!(restore.verdict, Verdict::Passed);
    assert_eq!(
        restore.purpose,
        RollbackPurpose::Restore {
            failed: Some("serve".into())
        }
    );
    // The restore undid the step that passed, and the failure still stands.
    assert!(!session.step_passed("write-config"));
    assert_eq!(session.failure().map(|r| r.id.as_str()), Some("serve"));
    assert_eq!(session.phase(), Phase::Failed);
    assert_eq!(session.verdict(), Verdict::Failed);
    assert!(
        matches!(session.retry().await, Err(ExecError::NothingToRetry)),
        "retry runs the next step's failure only, and the next step is `write-config` again"
    );

    let outcome = session.finish().await.unwrap();
    assert_eq!(outcome.report.verdict, Verdict::Failed);
    assert!(
        outcome.report.rollback.is_none(),
        "a restore is no exercise: {:#?}",
        outcome.report.rollback
    );
    assert_eq!(outcome.report.restores, [restore]);
}

#[tokio::test]
async fn redoing_an_earlier_step_is_recorded_as_restores_never_as_the_exercise() {
    let (_root, provider) = provider();
    let mut session = Session::start(&provider, two_steps(), options())
        .await
        .unwrap();
    assert!(!session.run_remaining().await.unwrap());
    // Start over the way the issue's agent did: roll everything back, amend, run again.
    session.rollback().await.unwrap();
    session
        .amend(
            "write-config",
            Amendment::run("echo 'mode=new' > app.conf"),
            KnownIssue::new("", "the old mode is gone", "Write mode=new"),
        )
        .unwrap();
    assert!(
        session.run_remaining().await.unwrap(),
        "{:#?}",
        session.report()
    );
    assert_eq!(session.phase(), Phase::Passed);
    assert!(
        session.report().rollback.is_none(),
        "the restore before the successful run is not the exercise"
    );
    assert_eq!(session.report().restores.len(), 1);

    // Redo an earlier step once more, through a rewind: recorded as a redo.
    session.rewind_to("write-config").await.unwrap();
    assert_eq!(session.phase(), Phase::Ready);
    assert!(session.run_remaining().await.unwrap());

    // Only now, after the successful run, is a rollback the exercise.
    let exercise = session.rollback().await.unwrap().clone();
    assert_eq!(exercise.purpose, RollbackPurpose::Exercise);
    assert_eq!(session.phase(), Phase::RolledBack);
    let outcome = session.finish().await.unwrap();
    assert_eq!(outcome.report.verdict, Verdict::Passed);
    let purposes: Vec<&RollbackPurpose> =
        outcome.report.restores.iter().map(|r| &r.purpose).collect();
    assert_eq!(
        purposes,
        [
            &RollbackPurpose::Restore {
                failed: Some("serve".into())
            },
            &RollbackPurpose::Redo {
                step: "write-config".into()
            },
        ]
    );
    assert_eq!(outcome.report.rollback, Some(exercise));
}

#[tokio::test]
async fn a_dropped_call_leaves_a_cancelled_attempt_and_the_next_is_attempt_2() {
    let (_root, provider) = provider();
    // The first attempt hangs; any later one passes.
    let runbook = Runbook::builder("dropped")
        .step(
            Step::new("hang-once", "Hang once")
                .run("if [ -e tried ]; then touch done; else touch tried; sleep 454545; fi")
                .verify(Check::command("test -e done").exit_code(0))
                .rollback("rm -f tried done"),
        )
        .build()
        .unwrap()
        .runbook;
    let mut session = Session::start(&provider, runbook, options()).await.unwrap();
    // The caller's own timeout drops the call.
    let dropped = tokio::time::timeout(Duration::from_millis(700), session.run_next()).await;
    assert!(dropped.is_err(), "the step was to hang");
    wait_for("the dropped command to die", Duration::from_secs(5), || {
        processes_with("sleep 454545").is_empty()
    });

    let failure = session
        .failure()
        .expect("the dropped attempt is recorded")
        .clone();
    assert_eq!(failure.id, "hang-once");
    assert_eq!(failure.attempts.len(), 1);
    assert_eq!(
        failure.attempts[0].failure_kind,
        Some(FailureKind::Cancelled),
        "{failure:#?}"
    );
    assert!(failure.attempts[0].failure.contains("dropped"));

    let record = session.retry().await.unwrap();
    assert_eq!(record.status, StepStatus::Passed, "{record:#?}");
    assert_eq!(record.attempts.len(), 2, "the retry is attempt 2");
    let outcome = session.finish().await.unwrap();
    assert_eq!(outcome.report.verdict, Verdict::Passed);
    let log = outcome.log();
    let first = log
        .find("hang-once (attempt 1)")
        .expect("attempt 1 in the log");
    let end = log[first..]
        .find("--- cancelled: the call running it was dropped")
        .expect("the dropped attempt's log entry has its end");
    assert!(
        log[first + end..].contains("hang-once (attempt 2)"),
        "{log}"
    );
}

#[tokio::test]
async fn a_failed_steps_log_is_read_and_looked_into_through_the_session() {
    let (_root, provider) = provider();
    let runbook = Runbook::builder("look")
        .variable(
            Variable::new("API_TOKEN", Category::Credential)
                .secret(SecretSource::Vault, "secret/api")
                .generated(),
        )
        .step(
            Step::new("start", "Start")
                .run(
                    "mkdir -p logs; head -c 100000 /dev/zero | tr '\\0' 'x' > big.txt; echo >> big.txt\n\
                     echo \"token=$API_TOKEN\" >> big.txt\n\
                     printf 'starting\\nFATAL: bad token %s\\n' \"$API_TOKEN\" > logs/server.log; exit 1",
                )
                .verify(Check::command("true").exit_code(0))
                .rollback("true"),
        )
        .build()
        .unwrap()
        .runbook;
    let mut session = Session::start(&provider, runbook, options()).await.unwrap();
    let failed = session.run_next().await.unwrap().unwrap();
    assert_eq!(failed.status, StepStatus::Failed);
    let token = session.values()["API_TOKEN"].clone();

    let log = session.read_file("logs/server.log").await.unwrap();
    assert!(!log.truncated);
    assert_eq!(
        log.size,
        format!("starting\nFATAL: bad token {token}\n").len() as u64
    );
    assert_eq!(log.text, "starting\nFATAL: bad token ***\n");

    let big = session.read_file("big.txt").await.unwrap();
    assert!(big.truncated);
    assert!(big.size > 100_000);
    assert!(big.text.len() <= READ_LIMIT, "{}", big.text.len());
    assert_eq!(
        big.text, "token=***\n",
        "from the line after the cut, masked"
    );

    for refused in ["../etc/passwd", "/etc/passwd", "", "no-such.log", "logs"] {
        let e = session.read_file(refused).await.unwrap_err();
        assert!(matches!(e, ExecError::BadPath { .. }), "{refused:?}: {e}");
    }
    // A link a hostile step planted is read as the sandbox's user reads it: root's
    // shadow file stays unreadable even when the caller (an MCP server) is root.
    let planted = session
        .exec("ln -s /etc/shadow leak", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(planted.exit_code, Some(0), "{planted:?}");
    let e = session.read_file("leak").await.unwrap_err();
    assert!(matches!(e, ExecError::BadPath { .. }), "{e}");

    // A command to look around: recorded in the log, masked, and no step.
    let seen = session
        .exec("grep FATAL logs/server.log", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(seen.stdout, "FATAL: bad token ***\n");
    assert_eq!(session.report().steps.len(), 1);
    assert_eq!(session.report().steps[0].attempts.len(), 1);
    assert_eq!(session.failure().map(|r| r.id.as_str()), Some("start"));

    let outcome = session.finish().await.unwrap();
    assert!(
        outcome
            .log()
            .contains("=== exec\n$ grep FATAL logs/server.log")
    );
    assert!(outcome.log().contains("=== read logs/server.log"));
    assert!(!outcome.log().contains(&token));
}

#[tokio::test]
async fn a_dropped_rollback_is_recorded_as_cancelled_and_failed() {
    let (_root, provider) = provider();
    let runbook = Runbook::builder("dropped-rollback")
        .step(
            Step::new("slow-undo", "Slow to undo")
                .run("touch made")
                .verify(Check::command("test -e made").exit_code(0))
                .rollback("sleep 474747"),
        )
        .build()
        .unwrap()
        .runbook;
    let mut session = Session::start(&provider, runbook, options()).await.unwrap();
    assert!(session.run_remaining().await.unwrap());
    let dropped = tokio::time::timeout(Duration::from_millis(700), session.rollback()).await;
    assert!(dropped.is_err(), "the rollback was to hang");
    wait_for(
        "the dropped rollback to die",
        Duration::from_secs(5),
        || processes_with("sleep 474747").is_empty(),
    );
    let outcome = session.finish().await.unwrap();
    let exercise = outcome
        .report
        .rollback
        .as_ref()
        .expect("the exercise is recorded");
    assert_eq!(exercise.verdict, Verdict::Failed);
    assert_eq!(exercise.steps.len(), 1);
    assert_eq!(
        exercise.steps[0].attempts[0].failure_kind,
        Some(FailureKind::Cancelled)
    );
    assert!(
        outcome
            .log()
            .contains("--- cancelled: the call running it was dropped")
    );
}
