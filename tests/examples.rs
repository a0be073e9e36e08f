//! Every example runs end to end and produces a handoff package that says what happened.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn example(name: &str) -> String {
    repo()
        .join("examples")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn workdir() -> tempfile::TempDir {
    common::workdir("runbook-example-")
}

fn env_path() -> String {
    format!(
        "/usr/lib/postgresql/15/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    )
}

fn run(program: &Path, dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("RUNBOOK_STATE_DIR", dir.join("state"))
        .env("PATH", env_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}\n{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn cli(dir: &Path, args: &[&str]) -> Output {
    run(Path::new(env!("CARGO_BIN_EXE_runbook")), dir, args)
}

fn free_port() -> String {
    common::free_port().to_string()
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn assert_sandboxes_gone(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir.join("state/local"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "sandboxes left behind: {left:?}");
}

#[test]
fn quickstart() {
    let dir = workdir();
    cli(
        dir.path(),
        &[
            "run",
            &format!("{}/runbook.yaml", example("quickstart")),
            "--exercise-rollback",
        ],
    );
    let readme = read(dir.path(), "handoff-package/README.md");
    assert!(
        readme.contains(
            "**Tested in a sandbox: passed (rollbacks exercised: passed). Rehearsed: the scripts \
             in this package ran end to end in a fresh sandbox with other values.**"
        ),
        "{readme}"
    );
    let rehearsal = read(dir.path(), "handoff-package/test-results/rehearsal.yaml");
    assert!(rehearsal.starts_with("verdict: passed"), "{rehearsal}");
    assert!(readme.contains("**Rollback tested:**"));
    assert!(
        !read(dir.path(), "handoff-package/test-results/sandbox-log.txt").contains("token=0"),
        "no generated token in the log"
    );
    assert_sandboxes_gone(dir.path());
}

#[test]
fn postgres_yaml() {
    let dir = workdir();
    let port = free_port();
    cli(
        dir.path(),
        &[
            "run",
            &format!("{}/runbook.yaml", example("postgres")),
            "--exercise-rollback",
            "--var",
            &format!("PGPORT={port}"),
        ],
    );
    let readme = read(dir.path(), "handoff-package/README.md");
    assert!(readme.contains("**Result:** Success ("));
    assert!(readme.contains("permission denied for schema public"));
    assert!(read(dir.path(), "handoff-package/versions.yaml").contains("psql:"));
    assert_sandboxes_gone(dir.path());
}

#[test]
fn postgres_rust_program_plays_the_agent() {
    let dir = workdir();
    let exe = std::env::current_exe().unwrap();
    let program = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/postgres");
    let out = run(&program, dir.path(), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("permission denied for schema public"),
        "{stdout}"
    );
    assert!(stdout.contains("amended create-app-db"), "{stdout}");
    let readme = read(dir.path(), "handoff-package/README.md");
    assert!(
        readme.contains("on attempt 2, after fixing the issue below"),
        "{readme}"
    );
    assert!(readme.contains("**Known issues:**"));
    assert!(readme.contains("Make the application role the owner of its database"));
    assert!(
        read(dir.path(), "handoff-package/runbook.yaml").contains("OWNER TO"),
        "the amended command ships"
    );
    assert_sandboxes_gone(dir.path());
}

#[test]
fn notification_stack() {
    let dir = workdir();
    let ports = [
        ("DB_PORT", free_port()),
        ("CACHE_PORT", free_port()),
        ("QUEUE_PORT", free_port()),
    ];
    let mut args = vec![
        "run".to_owned(),
        format!("{}/runbook.yaml", example("notification-stack")),
        "--exercise-rollback".into(),
    ];
    for (name, port) in &ports {
        args.push("--var".into());
        args.push(format!("{name}={port}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cli(dir.path(), &args);
    let summary = read(dir.path(), "handoff-package/test-results/test-summary.yaml");
    assert!(summary.contains("verdict: passed"));
    let readme = read(dir.path(), "handoff-package/README.md");
    assert!(readme.contains("(rollbacks exercised: passed)"), "{readme}");
    assert!(readme.contains("RabbitMQ replaced by Redis Streams"));
    assert!(readme.contains("**Credentials** (`REDIS_PASSWORD`)"));
    assert_sandboxes_gone(dir.path());
}

#[test]
fn upgrade_path_across_two_processes() {
    let dir = workdir();
    let port = format!("DB_PORT={}", free_port());
    let first = cli(
        dir.path(),
        &[
            "run",
            &format!("{}/v1.yaml", example("upgrade")),
            "--var",
            &port,
            "--out",
            "v1-package",
            "--events",
            "ndjson",
        ],
    );
    let id = String::from_utf8_lossy(&first.stdout)
        .lines()
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["event"] == "sandboxReady").then(|| v["id"].as_str().unwrap().to_owned())
        })
        .unwrap();
    let listed =
        String::from_utf8_lossy(&cli(dir.path(), &["sandbox", "list"]).stdout).into_owned();
    assert!(
        listed.contains(&id) && listed.contains("schema-v1") && listed.contains("persistent"),
        "{listed}"
    );
    // A second process resumes the same sandbox and runs the upgrade runbook.
    cli(
        dir.path(),
        &[
            "resume",
            &id,
            &format!("{}/runbook.yaml", example("upgrade")),
            "--out",
            "upgrade-package",
        ],
    );
    let readme = read(dir.path(), "upgrade-package/README.md");
    assert!(readme.contains("# Upgrade the orders database to schema v2"));
    assert!(
        readme.contains("Verdict | Passed: 3 of 3 step(s) passed"),
        "{readme}"
    );
    cli(dir.path(), &["sandbox", "destroy", &id]);
    assert_sandboxes_gone(dir.path());
}

#[test]
fn kubernetes_form_renders_untested() {
    let dir = workdir();
    cli(
        dir.path(),
        &[
            "render",
            &format!("{}/runbook.yaml", example("kubernetes")),
            "--out",
            "k8s-package",
        ],
    );
    let readme = read(dir.path(), "k8s-package/README.md");
    assert!(readme.contains("**Not tested.**"));
    assert!(readme.contains("**Single-node sandbox.**"), "{readme}");
    assert!(
        readme.contains("Pod anti-affinity rules (require multiple nodes)"),
        "standard wording for a kind-only limitation"
    );
    let deploy = read(dir.path(), "k8s-package/scripts/deploy.sh");
    assert!(
        deploy
            .contains("kubectl -n \"$NAMESPACE\" get pods -l 'app.kubernetes.io/name=postgresql'"),
        "typed checks become kubectl, in the runbook's namespace"
    );
    let versions = read(dir.path(), "k8s-package/versions.yaml");
    assert!(
        versions.contains("bitnami/postgresql 15.5.0")
            && versions.contains("networking.k8s.io/v1 NetworkPolicy"),
        "{versions}"
    );
}

/// docs/example-package is what today's renderer makes of its own runbook, report and
/// log, file for file (so a change to the renderer cannot leave it stale). Re-render it
/// in place with `UPDATE_EXAMPLE_PACKAGE=1`; regenerate it from a new sandbox run as
/// docs/example-package/REGENERATE.md says.
#[test]
fn the_example_package_in_docs_is_current() {
    let dir = repo().join("docs/example-package");
    let text = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap();
    let (runbook, _) = runbook::load(dir.join("runbook.yaml")).unwrap();
    let report = runbook::report_from_yaml_str(&text("test-results/test-summary.yaml")).unwrap();
    let log = text("test-results/sandbox-log.txt");
    let evidence = runbook::render::Evidence {
        report: &report,
        log: Some(&log),
    };
    let package = runbook::render::Package::render(&runbook, Some(evidence), &[]).unwrap();
    let update = std::env::var_os("UPDATE_EXAMPLE_PACKAGE").is_some();
    let mut stale = Vec::new();
    for path in package.paths() {
        let want = package.get(path).unwrap();
        if std::fs::read(dir.join(path)).ok().as_deref() != Some(want) {
            if update {
                std::fs::write(dir.join(path), want).unwrap();
            }
            stale.push(path.to_owned());
        }
    }
    assert!(
        update || stale.is_empty(),
        "docs/example-package is stale in {stale:?}: run `UPDATE_EXAMPLE_PACKAGE=1 cargo test --test examples`"
    );
}
