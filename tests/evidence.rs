//! The agent's loop with real PostgreSQL, through the library: a first draft sets a
//! parameter PostgreSQL 15 refuses, which it says only in its own log; the failure
//! carries that line; the agent fixes the step without typing the error; the package
//! shows the failed attempt, its cause line, the fix as a diff and the known issue.
//!
//! Then the issue's own story (tests/fixtures/amend/postgres.yaml): the refused setting is
//! in a config file an earlier step writes and passes; the later step that starts the
//! server fails. The config file is fixed through the library (`Amendment::config`) and
//! through the CLI (`runbook resume ID --amend FIXED.yaml`); either way the session goes
//! back before the earlier step, runs again from it and passes.

mod common;

use runbook::exec::{Amendment, LocalProvider, RunOptions, Session};
use runbook::report::Verdict;
use runbook::{Category, Check, KnownIssue, Lifetime, Runbook, Step, Variable};

fn start_server(run: &str) -> Step {
    Step::new("start-server", "Create and start the server")
        .run(run)
        .verify(Check::command("pg_isready -h \"$PWD\" -p \"$PGPORT\"").exit_code(0))
        .rollback("pg_ctl --pgdata=data --mode=fast --wait stop && rm -rf data")
}

#[tokio::test]
async fn a_fixed_failure_is_documented_from_the_evidence_not_typed_by_hand() {
    let dir = common::workdir("runbook-evidence-");
    // Re-runnable as written: the cluster is made once, the settings file is replaced.
    let draft = "[ -e data/PG_VERSION ] || initdb --pgdata=data --username=postgres --auth=trust >/dev/null\n\
        printf \"port = %s\\nunix_socket_directories = '%s'\\nwal_keep_segments = 64\\n\" \"$PGPORT\" \"$PWD\" > data/postgresql.auto.conf\n\
        pg_ctl --pgdata=data --log=server.log --wait --timeout=30 start";
    let runbook = Runbook::builder("pg-evidence")
        .variable(
            Variable::new("PGPORT", Category::Endpoint)
                .sandbox(common::free_port().to_string())
                .production("Your server's port"),
        )
        .step(start_server(draft))
        .build()
        .unwrap()
        .runbook;
    let provider = LocalProvider::with_root(dir.path().join("state")).path(common::pg_path());
    let options = RunOptions {
        lifetime: Some(Lifetime::Session),
        ..RunOptions::default()
    };
    let mut session = Session::start(&provider, runbook, options).await.unwrap();
    let failed = session.run_next().await.unwrap().unwrap();
    let cause = "unrecognized configuration parameter \"wal_keep_segments\"";
    let attempt = &failed.attempts[0];
    assert!(
        attempt.causes.iter().any(|c| c.contains(cause)),
        "{:#?}",
        attempt.causes
    );
    assert_eq!(attempt.files[0].path, "server.log");

    // The agent fixes the command and says why; the error it saw comes from the evidence.
    let fixed = draft.replace("\\nwal_keep_segments = 64", "\\nwal_keep_size = 1GB");
    session
        .amend(
            "start-server",
            Amendment::run(fixed),
            KnownIssue::new(
                "",
                "wal_keep_segments was removed in PostgreSQL 13",
                "Use wal_keep_size (in bytes) instead",
            ),
        )
        .unwrap();
    let passed = session.retry().await.unwrap();
    assert_eq!(passed.attempts.len(), 2);
    assert!(passed.attempts[1].passed(), "{:#?}", passed.attempts[1]);
    assert!(
        session.run_next().await.unwrap().is_none(),
        "every step passed"
    );
    session.rollback().await.unwrap();
    let outcome = session.finish().await.unwrap();
    assert!(outcome.passed(), "{:#?}", outcome.report);

    let issue = &outcome.runbook.steps[0].known_issues[0];
    assert!(issue.error.contains(cause), "{issue:?}");
    let amendment = outcome.report.steps[0].attempts[0]
        .amendment
        .as_ref()
        .expect("the failed attempt keeps its amendment");
    assert!(amendment.diff.contains("-  "), "{}", amendment.diff);
    assert!(
        amendment.diff.contains("wal_keep_size = 1GB"),
        "{}",
        amendment.diff
    );
    assert!(
        amendment.diff.contains("wal_keep_segments = 64"),
        "{}",
        amendment.diff
    );

    let package = dir.path().join("pkg");
    runbook::write_package(&outcome, &package, false).unwrap();
    let readme = std::fs::read_to_string(package.join("README.md")).unwrap();
    for shown in [
        "What failed in the sandbox, and how it was fixed:",
        cause,
        "Fixed: Use wal_keep_size (in bytes) instead",
        "```diff",
    ] {
        assert!(
            readme.contains(shown),
            "`{shown}` is not in the README:\n{readme}"
        );
    }
}

/// The first draft: its settings file says `wal_keep_segments`, which PostgreSQL 15 refuses.
const DRAFT: &str = include_str!("fixtures/amend/postgres.yaml");
/// What PostgreSQL 15 writes to server.log about it, and nowhere else.
const CAUSE: &str = "unrecognized configuration parameter \"wal_keep_segments\"";

/// The draft's settings file, fixed.
fn fixed_settings(runbook: &Runbook) -> String {
    let file = runbook.config_file("config/postgresql.conf").unwrap();
    assert!(file.content.contains("wal_keep_segments = 64"));
    file.content
        .replace("wal_keep_segments = 64", "wal_keep_size = 1GB")
}

/// Whether `diff` removes `old` and adds `new`, each on a line of its own.
fn diff_replaces(diff: &str, old: &str, new: &str) -> bool {
    let line = |sign: char, text: &str| {
        diff.lines()
            .any(|l| l.starts_with(sign) && l[1..].trim() == text)
    };
    line('-', old) && line('+', new)
}

#[tokio::test]
async fn a_config_file_of_a_passed_step_is_amended_through_the_library() {
    let dir = common::workdir("runbook-evidence-");
    let runbook = runbook::from_yaml_str(DRAFT).unwrap();
    let fixed = fixed_settings(&runbook);
    let provider = LocalProvider::with_root(dir.path().join("state")).path(common::pg_path());
    let options = RunOptions {
        lifetime: Some(Lifetime::Session),
        vars: [("PGPORT".to_owned(), common::free_port().to_string())].into(),
        ..RunOptions::default()
    };
    let mut session = Session::start(&provider, runbook, options).await.unwrap();
    assert!(!session.run_remaining().await.unwrap(), "the draft fails");
    let failed = session.failure().expect("a failed step").clone();
    assert_eq!(failed.id, "start-server");
    assert!(
        failed.attempts[0].causes.iter().any(|c| c.contains(CAUSE)),
        "{:#?}",
        failed.attempts[0]
    );

    let issue = KnownIssue::new(
        "",
        "wal_keep_segments was removed in PostgreSQL 13",
        "Keep WAL with wal_keep_size (a size) instead",
    );
    let unknown = session
        .amend(
            "start-server",
            Amendment::default().config("config/nope.conf", "x"),
            issue.clone(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        unknown.contains("no config file `config/nope.conf`")
            && unknown.contains("config/postgresql.conf"),
        "{unknown}"
    );
    // The file is written by init-cluster, which passed: a plain amend cannot take it back.
    let fix = Amendment::default().config("config/postgresql.conf", fixed.clone());
    let refused = session
        .amend("start-server", fix.clone(), issue.clone())
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("used by step `init-cluster`") && refused.contains("amend_and_rewind"),
        "{refused}"
    );
    assert!(
        session.step_passed("init-cluster"),
        "a refusal changes nothing"
    );

    let back_to = session
        .amend_and_rewind("start-server", fix, issue)
        .await
        .unwrap();
    assert_eq!(back_to.as_deref(), Some("init-cluster"));
    assert_eq!(session.next_step().unwrap().id, "init-cluster");
    assert_eq!(
        session
            .runbook()
            .config_file("config/postgresql.conf")
            .unwrap()
            .content,
        fixed
    );
    assert!(
        session.run_remaining().await.unwrap(),
        "{:#?}",
        session.report()
    );
    session.rollback().await.unwrap();
    let outcome = session.finish().await.unwrap();
    assert!(outcome.passed(), "{:#?}", outcome.report);

    let rewinds = &outcome.report.restores;
    assert_eq!(rewinds.len(), 1, "{rewinds:#?}");
    assert_eq!(rewinds[0].verdict, Verdict::Passed);
    let undone: Vec<&str> = rewinds[0].steps.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(undone, ["init-cluster"]);
    let init = outcome
        .report
        .steps
        .iter()
        .find(|r| r.id == "init-cluster")
        .unwrap();
    assert_eq!(init.attempts.len(), 2, "init-cluster ran again");
    let start = outcome
        .report
        .steps
        .iter()
        .find(|r| r.id == "start-server")
        .unwrap();
    let amendment = start.attempts[0]
        .amendment
        .as_ref()
        .expect("the failed attempt keeps its amendment");
    assert!(
        diff_replaces(
            &amendment.diff,
            "wal_keep_segments = 64",
            "wal_keep_size = 1GB"
        ),
        "{}",
        amendment.diff
    );
    let issue = &outcome.runbook.step("start-server").unwrap().known_issues[0];
    assert!(issue.error.contains(CAUSE), "{issue:?}");
    // What differs on every run (the server's timestamp and pid) is not part of it.
    assert!(issue.error.starts_with("LOG:"), "{issue:?}");

    let package = dir.path().join("pkg");
    runbook::write_package(&outcome, &package, false).unwrap();
    let readme = std::fs::read_to_string(package.join("README.md")).unwrap();
    for shown in [
        "What failed in the sandbox, and how it was fixed:",
        CAUSE,
        "Fixed: Keep WAL with wal_keep_size (a size) instead",
        "-    wal_keep_segments = 64",
        "+    wal_keep_size = 1GB",
    ] {
        assert!(
            readme.contains(shown),
            "`{shown}` is not in the README:\n{readme}"
        );
    }
    let shipped = std::fs::read_to_string(package.join("config/postgresql.conf")).unwrap();
    assert!(shipped.contains("wal_keep_size = 1GB"), "{shipped}");
}

/// The same story through the CLI, as a person (or an agent with a shell) lives it.
#[test]
fn a_config_file_of_a_passed_step_is_fixed_with_resume_amend() {
    let dir = common::workdir("runbook-evidence-");
    let port = common::free_port().to_string();
    let var = format!("PGPORT={port}");
    std::fs::write(dir.path().join("draft.yaml"), DRAFT).unwrap();
    let fixed = DRAFT.replace("wal_keep_segments = 64", "wal_keep_size = 1GB");
    assert_ne!(fixed, DRAFT);
    std::fs::write(dir.path().join("fixed.yaml"), &fixed).unwrap();

    let run = common::runbook(
        dir.path(),
        &[
            "run",
            "draft.yaml",
            "--keep",
            "--var",
            &var,
            "--out",
            "draft-pkg",
        ],
    );
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("step `start-server`"), "{stderr}");
    assert!(
        stderr.lines().any(|l| l.contains(CAUSE)),
        "the reason is in server.log only, and shown: {stderr}"
    );
    let hint = stderr
        .lines()
        .find(|l| l.contains("--amend FIXED.yaml"))
        .unwrap_or_else(|| panic!("no resume command: {stderr}"));
    let id = hint
        .split("runbook resume ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_owned();

    let resumed = common::runbook(
        dir.path(),
        &["resume", &id, "--amend", "fixed.yaml", "--out", "pkg"],
    );
    let stderr = String::from_utf8_lossy(&resumed.stderr).into_owned();
    assert!(resumed.status.success(), "{stderr}");
    assert!(
        stderr.contains("amended: the run goes back to step `init-cluster`"),
        "{stderr}"
    );
    // The server of the passing run stops with its sandbox.
    let destroyed = common::runbook(dir.path(), &["sandbox", "destroy", &id]);
    assert!(
        destroyed.status.success(),
        "{}",
        String::from_utf8_lossy(&destroyed.stderr)
    );

    let pkg = dir.path().join("pkg");
    let readme = std::fs::read_to_string(pkg.join("README.md")).unwrap();
    for shown in [
        "What failed in the sandbox, and how it was fixed:",
        CAUSE,
        "```diff",
        "-    wal_keep_segments = 64",
        "+    wal_keep_size = 1GB",
        "**Known issues:**",
    ] {
        assert!(
            readme.contains(shown),
            "`{shown}` is not in the README:\n{readme}"
        );
    }
    let summary = runbook::report_from_yaml_str(
        &std::fs::read_to_string(pkg.join("test-results/test-summary.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary.verdict, Verdict::Passed);
    assert_eq!(summary.restores.len(), 1, "{:#?}", summary.restores);
    assert_eq!(summary.restores[0].steps[0].id, "init-cluster");
    let start = summary
        .steps
        .iter()
        .find(|r| r.id == "start-server")
        .unwrap();
    let failed = &start.attempts[0];
    assert!(
        failed.causes.iter().any(|c| c.contains(CAUSE)),
        "{failed:#?}"
    );
    let amendment = failed
        .amendment
        .as_ref()
        .expect("the amendment is recorded");
    assert!(
        diff_replaces(
            &amendment.diff,
            "wal_keep_segments = 64",
            "wal_keep_size = 1GB"
        ),
        "{}",
        amendment.diff
    );
    let (shipped, _) = runbook::load(pkg.join("runbook.yaml")).unwrap();
    let issue = &shipped.step("init-cluster").unwrap().known_issues[0];
    assert!(issue.error.contains(CAUSE), "{issue:?}");
    assert!(issue.error.starts_with("LOG:"), "{issue:?}");
    let config = &shipped
        .config_file("config/postgresql.conf")
        .unwrap()
        .content;
    assert!(config.contains("wal_keep_size = 1GB") && !config.contains("wal_keep_segments"));
}
