//! The flagship: an agent tests a PostgreSQL 15 deployment in a sandbox it provisions
//! itself, hits PostgreSQL 15's schema-permission change, fixes it, records the known
//! issue, exercises the rollback and writes the handoff package.
//!
//! ```text
//! cargo run --example postgres            # writes ./handoff-package
//! ```
//!
//! Needs the PostgreSQL 15 server binaries (`apt-get install postgresql-15`).

use std::collections::BTreeMap;
use std::time::Duration;

use runbook::exec::{Amendment, LocalProvider, RunOptions, Session};
use runbook::{
    Category, Check, ConfigFile, KnownIssue, Lifetime, Limitation, LimitationKind, Prerequisite,
    Rollback, Runbook, SecretSource, Step, Variable,
};

const PSQL_AS_SUPERUSER: &str = r#"PGPASSWORD="$PG_SUPERUSER_PASSWORD" psql --host="$PGHOST" --port="$PGPORT" --username=postgres --dbname=postgres -v ON_ERROR_STOP=1"#;
const PSQL_AS_APP: &str = r#"PGPASSWORD="$APP_PASSWORD" psql --host="$PGHOST" --port="$PGPORT" --username="$APP_USER" --dbname="$APP_DB""#;

fn create_app_db(fixed: bool) -> String {
    let owner = if fixed {
        "ALTER DATABASE :\"app_db\" OWNER TO :\"app_user\";\n"
    } else {
        ""
    };
    format!(
        "{PSQL_AS_SUPERUSER} -v app_user=\"$APP_USER\" -v app_password=\"$APP_PASSWORD\" -v app_db=\"$APP_DB\" <<'SQL'\n\
         SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'app_user', :'app_password')\n  \
         WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') \\gexec\n\
         SELECT format('CREATE DATABASE %I', :'app_db')\n  \
         WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'app_db') \\gexec\n\
         {owner}SQL"
    )
}

/// The runbook as the agent first writes it: without the PostgreSQL 15 fix.
fn first_draft() -> Result<Runbook, runbook::BuildError> {
    let var = |name: &str, category, sandbox: &str, production: &str| {
        Variable::new(name, category)
            .sandbox(sandbox)
            .production(production)
    };
    let secret = |name: &str, reference: &str| {
        Variable::new(name, Category::Credential)
            .secret(SecretSource::Vault, reference)
            .generated()
            .production("Read it from your secret manager")
    };
    Ok(Runbook::builder("postgres")
        .title("Deploy PostgreSQL 15 for myapp")
        .description("Initialize a PostgreSQL 15 server, create the application role and database, and verify that the application user can connect and run DDL.")
        .version("1.0.0")
        .success_criterion("`SELECT 1` and DDL succeed as the application user")
        .prerequisite(Prerequisite::new("initdb", ">=15, <16"))
        .prerequisite(Prerequisite::new("pg_ctl", ">=15, <16"))
        .prerequisite(Prerequisite::new("psql", ">=15, <16"))
        .variable(var("PGDATA", Category::Other, "pgdata", "The data directory on your database volume"))
        .variable(var("PGHOST", Category::Endpoint, "127.0.0.1", "The address of your database host"))
        .variable(var("PGPORT", Category::Endpoint, "55432", "Usually 5432"))
        .variable(var("APP_DB", Category::Other, "myapp", "The database your application expects"))
        .variable(var("APP_USER", Category::Other, "myapp", "The role your application connects as"))
        .variable(secret("PG_SUPERUSER_PASSWORD", "secret/data/postgres/superuser#password"))
        .variable(secret("APP_PASSWORD", "secret/data/myapp/db#password"))
        .config_file(ConfigFile::new(
            "config/postgresql.conf",
            "listen_addresses = '${PGHOST}'\nport = ${PGPORT}\nunix_socket_directories = ''\nmax_connections = 50\n",
        ))
        .step(
            Step::new("init-cluster", "Initialize the database cluster")
                .run("initdb --pgdata=\"$PGDATA\" --username=postgres --auth-local=scram-sha-256 --auth-host=scram-sha-256 \\\n  --pwfile=<(printf '%s\\n' \"$PG_SUPERUSER_PASSWORD\")\ncp config/postgresql.conf \"$PGDATA/runbook.conf\"\nprintf \"include 'runbook.conf'\\n\" >> \"$PGDATA/postgresql.conf\"")
                .uses_file("config/postgresql.conf")
                .timeout(Duration::from_secs(120))
                .verify(Check::command("cat \"$PGDATA/PG_VERSION\"").named("cluster is PostgreSQL 15").stdout_equals("15"))
                .rollback_with(Rollback::new("rm -rf \"$PGDATA\"").verify(
                    Check::command("test ! -e \"$PGDATA\" && echo absent").named("data directory is gone").stdout_equals("absent"),
                )),
        )
        .step(
            Step::new("start-server", "Start the server")
                .run("pg_ctl --pgdata=\"$PGDATA\" --log=\"$PGDATA/server.log\" --wait --timeout=60 start")
                .verify(
                    Check::command("pg_isready --host=\"$PGHOST\" --port=\"$PGPORT\"")
                        .named("server accepts connections")
                        .stdout_contains("accepting connections")
                        .within(Duration::from_secs(30))
                        .every(Duration::from_millis(500)),
                )
                .note("--wait matters: without it the next step may connect before the server accepts connections.")
                .rollback_with(Rollback::new("pg_ctl --pgdata=\"$PGDATA\" --mode=fast --wait stop").verify(
                    Check::command("pg_isready --host=\"$PGHOST\" --port=\"$PGPORT\"")
                        .named("server no longer answers")
                        .exit_code(2)
                        .within(Duration::from_secs(30)),
                )),
        )
        .step(
            Step::new("create-app-db", "Create the application role and database")
                .run(create_app_db(false))
                .verify(Check::command(format!("{PSQL_AS_APP} -tAc 'SELECT 1'")).named("app user can connect").stdout_equals("1"))
                .verify(
                    Check::command(format!("{PSQL_AS_APP} -v ON_ERROR_STOP=1 -c 'CREATE TABLE _runbook_ddl_test (id int); DROP TABLE _runbook_ddl_test;'"))
                        .named("app user can run DDL")
                        .stdout_contains("DROP TABLE"),
                )
                .rollback(format!("{PSQL_AS_SUPERUSER} -v app_user=\"$APP_USER\" -v app_db=\"$APP_DB\" <<'SQL'\nDROP DATABASE IF EXISTS :\"app_db\";\nDROP ROLE IF EXISTS :\"app_user\";\nSQL")),
        )
        .limitation(Limitation::standard(LimitationKind::NoProductionData))
        .checklist_item("Configure backups before go-live")
        .build()?
        .runbook)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pg_bin = "/usr/lib/postgresql/15/bin";
    let path = format!("{pg_bin}:{}", std::env::var("PATH").unwrap_or_default());
    let provider = LocalProvider::new()?.path(path);
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let options = RunOptions {
        lifetime: Some(Lifetime::Session),
        vars: BTreeMap::from([("PGPORT".to_owned(), port.to_string())]),
        ..RunOptions::default()
    };

    let mut session = Session::start(&provider, first_draft()?, options).await?;
    println!("sandbox {} ({})", session.id(), session.lifetime());
    for tool in session.preflight().await? {
        println!(
            "pre-flight: {} {}",
            tool.tool,
            tool.detected.unwrap_or_default()
        );
    }
    while let Some(record) = session.run_next().await? {
        let attempt = record.attempts.last().expect("a record has an attempt");
        if attempt.passed() {
            println!("ok: {} ({} ms)", record.title, attempt.duration_ms);
            continue;
        }
        // Play the agent: read the failure, find the cause, fix the step, record why.
        println!("failed: {}: {}", record.title, attempt.failure);
        if record.id == "create-app-db"
            && attempt
                .failure
                .contains("permission denied for schema public")
        {
            session.amend(
                "create-app-db",
                Amendment::run(create_app_db(true)),
                KnownIssue::new(
                    "ERROR:  permission denied for schema public",
                    "PostgreSQL 15 revoked CREATE on the public schema from PUBLIC; only the database owner may create objects there.",
                    "Make the application role the owner of its database (ALTER DATABASE … OWNER TO …).",
                ),
            )?;
            println!("amended create-app-db; retrying");
        } else {
            return Err(format!("unexpected failure in {}", record.id).into());
        }
    }
    let rollback = session.rollback().await?;
    println!("rollback exercised: {}", rollback.verdict.as_str());
    let mut outcome = session.finish().await?;
    // The package proves itself: its own scripts, in a fresh sandbox, with other values
    // (another port, another data directory, new passwords).
    let package = runbook::render_package(&outcome)?;
    let rehearsal = runbook::rehearse(
        &provider,
        &outcome.runbook,
        &package,
        &outcome.values,
        &runbook::RehearsalOptions::default(),
    )
    .await?;
    for run in &rehearsal.runs {
        let mark = if run.passed { "ok" } else { "FAILED" };
        println!("rehearsal {mark}: {} ({})", run.phase, run.command);
    }
    let rehearsed = rehearsal.verdict == runbook::report::Verdict::Passed;
    outcome.report.rehearsal = Some(rehearsal);
    let out = std::path::Path::new("handoff-package");
    runbook::write_package(&outcome, out, true)?;
    println!(
        "handoff package ({}, {}): {}",
        outcome.report.verdict.as_str(),
        if rehearsed {
            "rehearsed"
        } else {
            "rehearsal FAILED"
        },
        out.display()
    );
    if !rehearsed {
        return Err("the rehearsal failed: see handoff-package/test-results/rehearsal.yaml".into());
    }
    Ok(())
}
