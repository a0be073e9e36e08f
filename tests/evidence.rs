//! The agent's loop with real PostgreSQL, through the library: a first draft sets a
//! parameter PostgreSQL 15 refuses, which it says only in its own log; the failure
//! carries that line; the agent fixes the step without typing the error; the package
//! shows the failed attempt, its cause line, the fix as a diff and the known issue.

mod common;

use runbook::exec::{Amendment, LocalProvider, RunOptions, Session};
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
