//! The seed's PostgreSQL story, for real, with the PostgreSQL 15 server binaries:
//! initdb and start a server in the sandbox, create the app role and database, hit
//! PostgreSQL 15's "permission denied for schema public", amend the step like an agent,
//! record the known issue, retry, pass, exercise the rollback, leave nothing behind.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{provider, wait_for};
use runbook_core::report::{StepStatus, Verdict};
use runbook_core::{KnownIssue, Lifetime, Runbook};
use runbook_exec::{Amendment, LocalProvider, RunOptions, Session};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn example() -> Runbook {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/postgres/runbook.yaml");
    runbook_core::load(path).unwrap().0
}

fn with_pg_path(provider: LocalProvider) -> LocalProvider {
    let path = std::env::var("PATH").unwrap_or_default();
    provider.path(format!("{PG_BIN}:{path}"))
}

fn options(port: u16) -> RunOptions {
    RunOptions {
        lifetime: Some(Lifetime::Session),
        vars: BTreeMap::from([("PGPORT".to_owned(), port.to_string())]),
        ..RunOptions::default()
    }
}

/// The first version an agent writes: without the ownership fix, and no known issue yet.
fn naive(mut runbook: Runbook) -> (Runbook, String) {
    let step = runbook
        .steps
        .iter_mut()
        .find(|s| s.id == "create-app-db")
        .unwrap();
    let fixed = step.run.clone();
    step.run = fixed
        .lines()
        .filter(|l| !l.contains("OWNER TO"))
        .map(|l| format!("{l}\n"))
        .collect();
    step.known_issues.clear();
    (runbook, fixed)
}

#[tokio::test]
async fn the_postgres_15_story_runs_for_real() {
    assert!(
        Path::new(PG_BIN).join("initdb").exists(),
        "PostgreSQL 15 server binaries are missing: apt-get install postgresql-15"
    );
    let (_root, provider) = provider();
    let provider = with_pg_path(provider);
    let (runbook, fixed_command) = naive(example());
    let mut session = Session::start(&provider, runbook, options(common::free_port()))
        .await
        .unwrap();
    let versions = session.preflight().await.unwrap();
    assert!(
        versions
            .iter()
            .all(|v| v.detected.as_deref().is_some_and(|d| d.starts_with("15."))),
        "{versions:?}"
    );

    for _ in 0..3 {
        session.run_next().await.unwrap();
    }
    let failure = session
        .failure()
        .expect("DDL as the app user must fail on PostgreSQL 15")
        .clone();
    assert_eq!(failure.id, "create-app-db");
    let attempt = &failure.attempts[0];
    assert!(attempt.checks[0].passed, "SELECT 1 works: {attempt:#?}");
    assert!(
        attempt
            .failure
            .contains("permission denied for schema public"),
        "{}",
        attempt.failure
    );

    session
        .amend(
            "create-app-db",
            Amendment::run(fixed_command.clone()),
            KnownIssue::new(
                "ERROR:  permission denied for schema public",
                "PostgreSQL 15 revoked CREATE on the public schema from PUBLIC; only the database owner may create objects there.",
                "Make the application role the owner of its database (ALTER DATABASE … OWNER TO …).",
            ),
        )
        .unwrap();
    let retried = session.retry().await.unwrap();
    assert_eq!(retried.status, StepStatus::Passed, "{retried:#?}");
    assert!(session.run_next().await.unwrap().is_none());

    let id = session.id().to_owned();
    let sandbox = provider.sandbox_dir(&id);
    let rollback = session.rollback().await.unwrap().clone();
    assert_eq!(rollback.verdict, Verdict::Passed, "{rollback:#?}");
    assert_eq!(
        rollback
            .steps
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        ["create-app-db", "start-server", "init-cluster"]
    );
    assert!(
        !sandbox.join("work/pgdata").exists(),
        "rollback removes the data"
    );

    let outcome = session.finish().await.unwrap();
    assert_eq!(outcome.report.verdict, Verdict::Passed);
    let step = outcome.runbook.step("create-app-db").unwrap();
    assert_eq!(step.run, fixed_command);
    assert!(
        step.known_issues[0]
            .error
            .contains("permission denied for schema public")
    );
    assert!(provider.processes(&id).is_empty());
    assert!(!sandbox.exists());
}

#[tokio::test]
async fn teardown_stops_a_running_server() {
    let (_root, provider) = provider();
    let provider = with_pg_path(provider);
    let mut session = Session::start(&provider, example(), options(common::free_port()))
        .await
        .unwrap();
    for _ in 0..2 {
        let record = session.run_next().await.unwrap().unwrap();
        assert_eq!(record.status, StepStatus::Passed, "{record:#?}");
    }
    let id = session.id().to_owned();
    let running: Vec<i32> = provider.processes(&id);
    assert!(
        running.iter().any(|pid| cmdline(*pid).contains("postgres")),
        "the server should be running"
    );
    session.finish().await.unwrap();
    wait_for(
        "every postgres process of the sandbox to exit",
        Duration::from_secs(5),
        || {
            running.iter().all(|pid| {
                !PathBuf::from(format!("/proc/{pid}")).exists() || cmdline(*pid).is_empty()
            })
        },
    );
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs root (a network namespace)"]
async fn the_postgres_story_runs_network_isolated() {
    common::require_root();
    let (_root, provider) = provider();
    let provider = with_pg_path(provider).isolate_network(true);
    // Inside its own namespace the sandbox may use any port: nothing else is there.
    let mut opts = options(55432);
    opts.lifetime = Some(Lifetime::Ephemeral);
    let outcome = runbook_exec::run_all(
        &provider,
        example(),
        opts,
        runbook_exec::RunMode {
            exercise_rollback: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(outcome.passed(), "{:#?}", outcome.report);
    assert!(outcome.report.sandbox.network_isolated);
}
