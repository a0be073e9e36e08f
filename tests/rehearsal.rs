//! The rehearsal: runbooks that pass the sandbox run but whose package would fail the
//! human fail `runbook run`, naming the phase and the step; `runbook rehearse` re-proves
//! a package as it is on disk.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn workdir() -> tempfile::TempDir {
    common::workdir("runbook-rehearsal-")
}

fn runbook(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(args)
        .current_dir(dir)
        .env("RUNBOOK_STATE_DIR", dir.join("state"))
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a one-step runbook whose sandbox run passes; returns the failed rehearsal's words.
fn failing_rehearsal(dir: &Path, name: &str, body: &str) -> String {
    std::fs::write(
        dir.join(format!("{name}.yaml")),
        format!("apiVersion: runbook/v1\nkind: Runbook\nmetadata: {{ name: {name} }}\n{body}"),
    )
    .unwrap();
    let file = format!("{name}.yaml");
    let out = runbook(dir, &["run", &file, "--out", name, "--exercise-rollback"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{name}: {err}");
    assert!(
        err.contains("handoff package (passed)"),
        "{name}: the sandbox run itself failed: {err}"
    );
    assert!(
        err.contains("handoff package (rehearsal FAILED)"),
        "{name}: {err}"
    );
    // The package is still written, and says so everywhere.
    let readme = std::fs::read_to_string(dir.join(name).join("README.md")).unwrap();
    let deploy = std::fs::read_to_string(dir.join(name).join("scripts/deploy.sh")).unwrap();
    assert!(readme.contains("REHEARSAL FAILED") && deploy.contains("REHEARSAL FAILED"));
    err
}

#[test]
fn a_step_that_hard_codes_the_sandbox_value_fails_the_rehearsal() {
    let dir = workdir();
    let err = failing_rehearsal(
        dir.path(),
        "hardcoded",
        r#"variables:
  - { name: APP_PORT, category: endpoint, sandbox: "8080", production: your port }
steps:
  - id: write-config
    title: Write the config
    run: echo "port=8080" > app.conf
    verify: [{ run: cat app.conf, expect: { stdout: { equals: "port=${APP_PORT}" } } }]
    rollback:
      run: rm -f app.conf
      verify: [{ run: test ! -e app.conf, expect: { exitCode: 0 } }]
"#,
    );
    // The step, the check and why, as the script recorded them in its outcome file.
    assert!(
        err.contains("phase `deploy`")
            && err.contains("at step `write-config`, check `cat app.conf`: expected exit code 0")
            && err.contains("saw stdout \"port=8080\"")
            && err.contains("APP_PORT"),
        "{err}"
    );
}

#[test]
fn a_check_that_is_not_repeatable_fails_the_rehearsal() {
    let dir = workdir();
    let err = failing_rehearsal(
        dir.path(),
        "counter",
        r#"steps:
  - id: count
    title: Start a counter
    run: echo 1 > counter
    verify:
      - name: the counter moves on
        run: n=$(cat counter); echo $((n + 1)) > counter; cat counter
        expect: { stdout: { equals: "2" } }
    rollback:
      run: rm -f counter
      verify: [{ run: test ! -e counter, expect: { exitCode: 0 } }]
"#,
    );
    assert!(
        err.contains("phase `verify`")
            && err.contains("at step `count`, check `the counter moves on`: expected "),
        "{err}"
    );
}

#[test]
fn a_rollback_that_leaves_a_process_running_fails_the_rehearsal() {
    let dir = workdir();
    let err = failing_rehearsal(
        dir.path(),
        "daemon",
        r#"steps:
  - id: start
    title: Start a daemon
    run: (setsid sleep 4242 > /dev/null 2>&1 &) && touch started
    verify: [{ run: test -e started, expect: { exitCode: 0 } }]
    rollback:
      run: rm -f started
      verify: [{ run: test ! -e started, expect: { exitCode: 0 } }]
"#,
    );
    assert!(
        err.contains("after rollback.sh, something is left") && err.contains("sleep 4242"),
        "{err}"
    );
}

#[test]
fn rehearse_reproves_a_package_and_refuses_an_edited_one_unless_asked() {
    let dir = workdir();
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/runbook.yaml");
    let out = runbook(
        dir.path(),
        &[
            "run",
            quickstart.to_str().unwrap(),
            "--out",
            "pkg",
            "--no-rehearsal",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!dir.path().join("pkg/test-results/rehearsal.yaml").exists());
    let out = runbook(dir.path(), &["rehearse", "pkg"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let evidence = std::fs::read_to_string(dir.path().join("pkg.rehearsal.yaml")).unwrap();
    assert!(evidence.starts_with("verdict: passed"), "{evidence}");
    // A human edits a config file: refused, then rehearsed as edited with --allow-edits.
    let conf = dir.path().join("pkg/config/app.conf");
    let edited = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("interval_ms=200", "interval_ms=500");
    std::fs::write(&conf, edited).unwrap();
    let out = runbook(dir.path(), &["rehearse", "pkg"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("config/app.conf") && stderr(&out).contains("--allow-edits"),
        "{}",
        stderr(&out)
    );
    let out = runbook(dir.path(), &["rehearse", "pkg", "--allow-edits"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let evidence = std::fs::read_to_string(dir.path().join("pkg.rehearsal.yaml")).unwrap();
    assert!(
        evidence.contains("edited:\n- config/app.conf"),
        "{evidence}"
    );
}

/// A `file` check is evaluated in-process in the sandbox and as `test`/`grep`/`stat` by the
/// scripts: the rehearsal runs the scripts with another port, so both must agree.
#[test]
fn file_checks_hold_in_the_sandbox_and_in_the_scripts() {
    let dir = workdir();
    std::fs::write(
        dir.path().join("files.yaml"),
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: files }
variables:
  - { name: APP_PORT, category: endpoint, sandbox: "8080", production: your port }
configFiles:
  - path: config/app.conf
    content: "port=${APP_PORT}\n"
steps:
  - id: install
    title: Install the config
    run: mkdir -p app && cp config/app.conf app/app.conf && chmod 600 app/app.conf
    files: [config/app.conf]
    verify:
      - name: the config names the port
        file: { path: app/app.conf, contains: "port=${APP_PORT}", matches: '^port=\d+\n$', mode: "0600" }
    rollback:
      run: rm -rf app
      verify:
        - name: the app is gone
          file: { path: app, exists: false }
"#,
    )
    .unwrap();
    let out = runbook(dir.path(), &["run", "files.yaml", "--exercise-rollback"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let deploy =
        std::fs::read_to_string(dir.path().join("handoff-package/scripts/deploy.sh")).unwrap();
    assert!(
        deploy.contains(r#"grep -qF -- 'port='"${APP_PORT}" 'app/app.conf'"#),
        "{deploy}"
    );
    let rehearsal = std::fs::read_to_string(
        dir.path()
            .join("handoff-package/test-results/rehearsal.yaml"),
    )
    .unwrap();
    assert!(rehearsal.starts_with("verdict: passed"), "{rehearsal}");
}

/// `tcp`, `http` and `process` checks, in-process in the sandbox and as bash `/dev/tcp`,
/// `curl` and `/proc/*/comm` in the scripts: the rehearsal (another port) proves both.
#[test]
fn tcp_http_and_process_checks_hold_in_the_sandbox_and_in_the_scripts() {
    let dir = workdir();
    let port = common::free_port();
    std::fs::write(
        dir.path().join("serve.yaml"),
        format!(
            r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: serve }}
variables:
  - {{ name: APP_PORT, category: endpoint, sandbox: "{port}", production: your port }}
steps:
  - id: serve
    title: Serve the site
    run: |
      mkdir -p site && echo ok > site/health
      (cd site && exec setsid nohup python3 -m http.server "$APP_PORT" --bind 127.0.0.1 > /dev/null 2>&1) &
      echo $! > server.pid
    verify:
      - tcp: {{ host: 127.0.0.1, port: "${{APP_PORT}}" }}
        within: 20s
        interval: 100ms
      - http: {{ url: "http://127.0.0.1:${{APP_PORT}}/health", bodyContains: ok }}
        within: 10s
        interval: 100ms
      - process: {{ name: python3 }}
    rollback:
      run: kill "$(cat server.pid)" && rm -rf site server.pid
      verify:
        - file: {{ path: site, exists: false }}
"#
        ),
    )
    .unwrap();
    let out = runbook(dir.path(), &["run", "serve.yaml", "--exercise-rollback"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rehearsal = std::fs::read_to_string(
        dir.path()
            .join("handoff-package/test-results/rehearsal.yaml"),
    )
    .unwrap();
    assert!(rehearsal.starts_with("verdict: passed"), "{rehearsal}");
    let deploy =
        std::fs::read_to_string(dir.path().join("handoff-package/scripts/deploy.sh")).unwrap();
    assert!(
        deploy.contains("/dev/tcp/$0/$1")
            && deploy.contains("curl -sS")
            && deploy.contains("for p in /proc/[0-9]*; do")
    );
}

/// The package records the values the run used (a `--var`, not the authored `sandbox:`
/// value) and the rehearsal picks others; a generated secret is recorded nowhere.
#[test]
fn the_package_records_the_values_the_run_used() {
    let dir = workdir();
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/runbook.yaml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let port_var = format!("APP_PORT={port}");
    let out = runbook(
        dir.path(),
        &[
            "run",
            quickstart.to_str().unwrap(),
            "--var",
            &port_var,
            "--out",
            "pkg",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let read = |p: &str| std::fs::read_to_string(dir.path().join("pkg").join(p)).unwrap();
    let shipped = runbook::from_yaml_str(&read("runbook.yaml")).unwrap();
    let value = |name: &str| shipped.variable(name).unwrap().sandbox.clone();
    assert_eq!(value("APP_PORT"), Some(port.clone()));
    assert_eq!(
        value("APP_DIR").as_deref(),
        Some("app"),
        "the authored value"
    );
    assert_eq!(
        value("API_TOKEN"),
        None,
        "a generated value is never recorded"
    );
    assert!(read("README.md").contains(&format!("| `APP_PORT` | `{port}` |")));
    let rehearsal = read("test-results/rehearsal.yaml");
    assert!(
        rehearsal.contains(&format!("name: APP_PORT\n  sandbox: \"{port}\"\n")),
        "{rehearsal}"
    );
}

/// A package made by `run`, not rehearsed, in `dir/pkg`.
fn quickstart_package(dir: &Path) {
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/runbook.yaml");
    let out = runbook(
        dir,
        &[
            "run",
            quickstart.to_str().unwrap(),
            "--out",
            "pkg",
            "--no-rehearsal",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Every file under `dir`, and whether any holds `needle`.
fn anywhere(dir: &Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file()
                && std::fs::read(entry.path())
                    .is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle))
            {
                found.push(entry.path());
            }
        }
    }
    found
}

/// `rehearse` runs as root: a package file replaced by a link to a root-only file (with
/// --allow-edits, which rehearses edited files), or any other link in the package, is
/// refused by name, and the file it points to is never read into a sandbox or evidence.
#[test]
fn rehearse_refuses_a_package_holding_a_symbolic_link() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let dir = workdir();
    quickstart_package(dir.path());
    let mark = "r00t-only-7c41e9";
    let secret = dir.path().join("secret.conf");
    std::fs::write(&secret, format!("{mark}\n")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let conf = dir.path().join("pkg/config/app.conf");
    let original = std::fs::read(&conf).unwrap();
    std::fs::remove_file(&conf).unwrap();
    symlink(&secret, &conf).unwrap();
    let out = runbook(dir.path(), &["rehearse", "pkg", "--allow-edits"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("config/app.conf") && err.contains("symbolic link"),
        "{err}"
    );
    assert!(!err.contains(mark) && !String::from_utf8_lossy(&out.stdout).contains(mark));
    assert!(!dir.path().join("pkg.rehearsal.yaml").exists());
    // Only the secret itself holds it: not the state (sandboxes), not the package.
    assert_eq!(anywhere(dir.path(), mark), [secret]);

    // A link the package does not list is refused too.
    std::fs::remove_file(&conf).unwrap();
    std::fs::write(&conf, original).unwrap();
    symlink("/etc/shadow", dir.path().join("pkg/notes")).unwrap();
    let out = runbook(dir.path(), &["rehearse", "pkg"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("`notes` is a symbolic link"), "{err}");
}

/// The evidence goes beside the package (`PKG.rehearsal.yaml`): a link planted there is
/// refused, and the file it points to is left as it was.
#[test]
fn rehearse_never_writes_its_evidence_through_a_link() {
    use std::os::unix::fs::symlink;
    let dir = workdir();
    quickstart_package(dir.path());
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "unchanged\n").unwrap();
    symlink(&victim, dir.path().join("pkg.rehearsal.yaml")).unwrap();
    let out = runbook(dir.path(), &["rehearse", "pkg"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("pkg.rehearsal.yaml") && err.contains("symbolic link"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "unchanged\n");
    assert!(
        std::fs::symlink_metadata(dir.path().join("pkg.rehearsal.yaml"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

/// An address range is not a name: the rehearsal keeps a CIDR as it is, and says so in
/// its evidence and on the terminal; a real PostgreSQL server, configured with it in
/// `pg_hba.conf`, starts and lets a client in from that range, on another port and in
/// another data directory than the sandbox run's.
#[test]
fn a_cidr_rehearses_unchanged_and_postgres_accepts_it() {
    let dir = workdir();
    let port = common::free_port();
    std::fs::write(
        dir.path().join("hba.yaml"),
        format!(
            r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: hba }}
target: {{ platform: linux }}
prerequisites:
  - {{ tool: initdb, version: ">=15, <16" }}
  - {{ tool: pg_ctl, version: ">=15, <16" }}
  - {{ tool: psql, version: ">=15, <16" }}
variables:
  - {{ name: PGDATA, category: other, sandbox: pgdata }}
  - {{ name: PGPORT, category: endpoint, sandbox: "{port}" }}
  - {{ name: ALLOW_CIDR, category: networkPolicy, sandbox: 127.0.0.1/32, production: the clients' address range }}
configFiles:
  - path: config/pg_hba.conf
    content: |
      local all all trust
      host all all ${{ALLOW_CIDR}} trust
steps:
  - id: init
    title: Initialise the server with the clients' range
    run: |
      initdb --pgdata="$PGDATA" --auth=trust > /dev/null
      cp config/pg_hba.conf "$PGDATA/pg_hba.conf"
    files: [config/pg_hba.conf]
    timeout: 2m
    verify:
      - name: the clients' range is in pg_hba.conf
        run: grep -c "^host all all $ALLOW_CIDR trust$" "$PGDATA/pg_hba.conf"
        expect: {{ stdout: {{ equals: "1" }} }}
    rollback:
      run: rm -rf "$PGDATA"
      verify: [{{ run: test ! -e "$PGDATA", expect: {{ exitCode: 0 }} }}]
  - id: start
    title: Start the server
    run: pg_ctl --pgdata="$PGDATA" --log="$PGDATA/server.log" -o "-p $PGPORT -k '' -c listen_addresses=127.0.0.1" --wait --timeout=60 start
    timeout: 90s
    verify:
      - name: a client from the range gets in
        run: psql --host=127.0.0.1 --port="$PGPORT" --dbname=postgres -tAc 'SELECT 1'
        expect: {{ stdout: {{ equals: "1" }} }}
        within: 30s
        interval: 500ms
    rollback:
      run: pg_ctl --pgdata="$PGDATA" --mode=fast --wait stop
"#
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["run", "hba.yaml", "--out", "hba", "--exercise-rollback"])
        .current_dir(dir.path())
        .env("RUNBOOK_STATE_DIR", dir.path().join("state"))
        .env("PATH", common::pg_path())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        out.status.success() && err.contains("handoff package (passed, rehearsed)"),
        "{err}"
    );
    assert!(
        err.contains("  ALLOW_CIDR: 127.0.0.1/32 (unchanged: an address range (CIDR))")
            && err.contains(&format!("  PGPORT: {port} -> "))
            && err.contains("  PGDATA: pgdata -> pgdata_rehearsal (the sandbox value, suffixed)"),
        "the terminal says which values changed and which stayed: {err}"
    );
    let evidence =
        std::fs::read_to_string(dir.path().join("hba/test-results/rehearsal.yaml")).unwrap();
    let rehearsal: runbook::report::Rehearsal =
        serde_saphyr::from_str(&evidence).unwrap_or_else(|e| panic!("{e}: {evidence}"));
    let cidr = rehearsal
        .values
        .iter()
        .find(|v| v.name == "ALLOW_CIDR")
        .unwrap();
    assert_eq!(
        (
            cidr.sandbox.as_str(),
            cidr.rehearsal.as_str(),
            cidr.how.as_str()
        ),
        (
            "127.0.0.1/32",
            "127.0.0.1/32",
            "unchanged: an address range (CIDR)"
        )
    );
    let port_value = rehearsal
        .values
        .iter()
        .find(|v| v.name == "PGPORT")
        .unwrap();
    assert_ne!(port_value.rehearsal, port.to_string(), "{evidence}");
}

/// A failed rehearsal's cause is on the terminal, not only in its evidence: the line the
/// failing command printed.
#[test]
fn a_failed_rehearsal_prints_its_cause_line() {
    let dir = workdir();
    let err = failing_rehearsal(
        dir.path(),
        "cause",
        r#"variables:
  - { name: APP_DIR, category: other, sandbox: app }
steps:
  - id: configure
    title: Write the config into the app directory
    run: mkdir -p "$APP_DIR" && cd app && echo ok > app.conf
    verify: [{ run: cat "$APP_DIR/app.conf", expect: { stdout: { equals: ok } } }]
    rollback:
      run: rm -rf "$APP_DIR"
      verify: [{ run: test ! -e "$APP_DIR", expect: { exitCode: 0 } }]
"#,
    );
    let cause = err
        .lines()
        .find_map(|l| l.strip_prefix("cause: "))
        .unwrap_or_else(|| panic!("no cause line: {err}"));
    assert!(
        cause.contains("cd: app: No such file or directory"),
        "{cause}\n{err}"
    );
    let evidence =
        std::fs::read_to_string(dir.path().join("cause/test-results/rehearsal.yaml")).unwrap();
    assert!(evidence.contains("cause: "), "{evidence}");
}
