//! The local sandbox is a boundary, tried as a hostile step would: each test is named
//! after the escape it pins (issue: "The sandbox is a boundary"). They need root
//! (containment and per-sandbox users only exist for root), so they are ignored unless
//! asked for: CI runs them as root with `cargo test --workspace -- --ignored`.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use common::{processes_with, provider, require_root, run_ephemeral, wait_for};
use runbook_core::{Category, Check, ConfigFile, Lifetime, Runbook, Step, Variable};
use runbook_exec::{ExecError, Provider, ProvisionRequest, RunMode, RunOptions, Session, run_all};

fn options(lifetime: Lifetime) -> RunOptions {
    RunOptions {
        lifetime: Some(lifetime),
        ..RunOptions::default()
    }
}

fn step(id: &str, run: &str) -> Step {
    Step::new(id, format!("Step {id}"))
        .run(run)
        .verify(Check::command("true").exit_code(0))
        .rollback("true")
}

/// A directory only root may enter, outside every sandbox.
fn root_only_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

mod links {
    use super::*;

    /// A step plants `config/app.conf -> victim` and `config/sub -> a root-only
    /// directory`; the next step declares both as its config files.
    #[tokio::test]
    #[ignore = "needs root"]
    async fn root_never_writes_through_a_link_the_sandbox_planted() {
        require_root();
        let secret_dir = root_only_dir();
        let victim = secret_dir.path().join("victim.conf");
        std::fs::write(&victim, "root's own\n").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
        // The planting step runs unprivileged: it can link to what it cannot read.
        let plant = format!(
            "mkdir -p config && ln -s {} config/app.conf && ln -s {} config/sub",
            victim.display(),
            secret_dir.path().display()
        );
        let (_root, provider) = provider();
        let runbook = |file: &str| {
            Runbook::builder("links")
                .config_file(ConfigFile::new(file, "overwritten\n"))
                .step(step("plant", &plant))
                .step(step("use", "true").uses_file(file))
                .build()
                .unwrap()
                .runbook
        };
        // The link as the last component: replaced in the sandbox, its target untouched.
        let outcome = run_ephemeral(&provider, runbook("config/app.conf")).await;
        assert!(outcome.passed(), "{:#?}", outcome.report);
        // The link as a directory on the way: refused, nothing written there.
        let err = run_all(
            &provider,
            runbook("config/sub/planted.conf"),
            options(Lifetime::Ephemeral),
            RunMode::default(),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("never follows links"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's own\n");
        let meta = std::fs::metadata(&victim).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o600));
        assert!(!secret_dir.path().join("planted.conf").exists());
    }

    #[tokio::test]
    #[ignore = "needs root"]
    async fn the_log_never_goes_to_a_shared_directory() {
        require_root();
        let (_root, provider) = provider();
        let runbook = Runbook::builder("log-home")
            .step(step("say", "echo hello"))
            .build()
            .unwrap()
            .runbook;
        let outcome = run_ephemeral(&provider, runbook).await;
        assert!(outcome.log().contains("hello"));
        let id = &outcome.report.sandbox.id;
        let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(id.as_str()))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

mod isolation {
    use super::*;

    /// Two live sandboxes, each with a secret config file and a daemon: neither can read
    /// the other's files or signal the other's processes.
    #[tokio::test]
    #[ignore = "needs root"]
    async fn a_sandbox_cannot_read_or_signal_another() {
        require_root();
        let (_root, provider) = provider();
        let runbook = Runbook::builder("neighbour")
            .variable(Variable::new("TOKEN", Category::Credential).generated())
            .config_file(ConfigFile::new("config/app.conf", "token=${TOKEN}\n"))
            .step(step("start", "(sleep 3131 & echo $! > daemon.pid)").uses_file("config/app.conf"))
            .build()
            .unwrap()
            .runbook;
        let mut a = Session::start(&provider, runbook.clone(), options(Lifetime::Session))
            .await
            .unwrap();
        let mut b = Session::start(&provider, runbook, options(Lifetime::Session))
            .await
            .unwrap();
        assert!(a.run_next().await.unwrap().unwrap().attempts[0].passed());
        assert!(b.run_next().await.unwrap().unwrap().attempts[0].passed());
        let a_work = provider.sandbox_dir(a.id()).join("work");
        let a_pid = std::fs::read_to_string(a_work.join("daemon.pid")).unwrap();
        let a_uid = std::fs::metadata(a_work.join("daemon.pid")).unwrap().uid();
        let b_uid = std::fs::metadata(provider.sandbox_dir(b.id()).join("work/daemon.pid"))
            .unwrap()
            .uid();
        assert_ne!(a_uid, b_uid, "each sandbox has a user of its own");
        assert!(a_uid != 0 && b_uid != 0);
        // From B, as B's steps: read A's secret, list A's directories, signal A's daemon.
        let attacks = [
            format!("cat {}/config/app.conf", a_work.display()),
            format!("ls {}", a_work.display()),
            format!("ls {}", provider.sandbox_dir(a.id()).display()),
            format!("kill -0 {}", a_pid.trim()),
        ];
        for attack in attacks {
            let b_step = Step::new("attack", "Attack the neighbour")
                .run(format!("{attack} && echo GOT-THROUGH"))
                .verify(Check::command("true").exit_code(0))
                .read_only();
            let mut rb = b.runbook().clone();
            rb.steps = vec![b_step];
            let outcome = run_ephemeral(&provider, rb).await;
            let out = &outcome.report.steps[0].attempts[0].output;
            assert_ne!(
                out.exit_code,
                Some(0),
                "`{attack}` got through: {}",
                out.stdout
            );
            assert!(!out.stdout.contains("token="), "{}", out.stdout);
            assert!(
                out.stderr.contains("Permission denied") || out.stderr.contains("not permitted"),
                "{}",
                out.stderr
            );
        }
        assert!(
            !processes_with("sleep 3131").is_empty(),
            "the daemons survived the attacks"
        );
        a.finish().await.unwrap();
        b.finish().await.unwrap();
        assert!(processes_with("sleep 3131").is_empty());
    }
}

mod containment {
    use super::*;

    /// The shell of every step and check is in its sandbox's cgroup before it runs a
    /// thing; the gate that holds it there leaves no trace (a nested bash runs freely,
    /// stdin is at its end, the environment is the one given).
    #[tokio::test]
    #[ignore = "needs root"]
    async fn every_command_starts_inside_the_sandbox_cgroup() {
        require_root();
        let (_root, provider) = provider();
        let inside = r#"grep -q "/runbook/inside-[0-9a-f]*/" /proc/$$/cgroup"#;
        let runbook = Runbook::builder("inside")
            .step(
                Step::new("inside", "Check where it runs")
                    .run(format!(
                        "{inside} && bash -c 'echo nested' > nested && cat > stdin && env > env"
                    ))
                    .verify(Check::command(format!("{inside} && echo yes")).stdout_equals("yes"))
                    .verify(Check::command("cat nested").stdout_equals("nested"))
                    .verify(Check::command("wc -c < stdin").stdout_equals("0"))
                    .verify(
                        Check::command("grep -c -e BASH_ENV -e RUNBOOK_GATE env || true")
                            .stdout_equals("0"),
                    )
                    .rollback("true"),
            )
            .build()
            .unwrap()
            .runbook;
        let outcome = run_ephemeral(&provider, runbook).await;
        assert!(outcome.passed(), "{:#?}", outcome.report);
    }

    #[tokio::test]
    #[ignore = "needs root"]
    async fn daemons_that_leave_the_process_group_die_with_an_ephemeral_sandbox() {
        require_root();
        let (_root, provider) = provider();
        let runbook = Runbook::builder("escape")
            .step(step(
                "escape",
                "(cd / && env -i setsid sleep 7791 &); ( ( setsid nohup sleep 7792 >/dev/null 2>&1 & ) & )",
            ))
            .build()
            .unwrap()
            .runbook;
        let outcome = run_ephemeral(&provider, runbook).await;
        assert!(outcome.passed(), "{:#?}", outcome.report);
        assert!(
            processes_with("sleep 7791").is_empty(),
            "setsid + env -i + cd / escaped"
        );
        assert!(
            processes_with("sleep 7792").is_empty(),
            "a double fork escaped"
        );
    }

    #[tokio::test]
    #[ignore = "needs root"]
    async fn a_timeout_kills_what_the_command_started_outside_its_group() {
        require_root();
        let (_root, provider) = provider();
        let runbook = Runbook::builder("slow")
            .step(step("slow", "(setsid sleep 7793 &); sleep 7794").timeout(Duration::from_secs(1)))
            .build()
            .unwrap()
            .runbook;
        let outcome = run_all(
            &provider,
            runbook,
            options(Lifetime::Persistent),
            RunMode::default(),
        )
        .await
        .unwrap();
        assert!(!outcome.passed());
        assert!(outcome.report.steps[0].attempts[0].output.timed_out);
        // The sandbox is kept (persistent), yet nothing of the timed-out command runs.
        assert!(processes_with("sleep 7793").is_empty());
        assert!(processes_with("sleep 7794").is_empty());
        provider.destroy(&outcome.report.sandbox.id).await.unwrap();
    }

    /// The process that ran a persistent sandbox dies mid-step (the session is leaked,
    /// as a SIGKILL would leave it); resuming ends what the interrupted attempt left,
    /// and keeps the daemon an earlier, completed step started.
    #[tokio::test]
    #[ignore = "needs root"]
    async fn resume_ends_what_an_interrupted_attempt_left_running() {
        require_root();
        let (_root, provider) = provider();
        let runbook = Runbook::builder("interrupted")
            .step(step("daemon", "(setsid sleep 8895 &)"))
            .step(step("hang", "(setsid sleep 8896 &); sleep 7797"))
            .build()
            .unwrap()
            .runbook;
        let mut session = Session::start(&provider, runbook, options(Lifetime::Persistent))
            .await
            .unwrap();
        let id = session.id().to_owned();
        session.run_next().await.unwrap();
        // The second step starts and is abandoned mid-run, its future dropped without
        // being polled again: std::mem::forget stands in for a killed process.
        {
            let fut = Box::pin(session.run_next());
            let mut fut = fut;
            let _ = tokio::time::timeout(Duration::from_millis(300), &mut fut).await;
            wait_for("the hanging step", Duration::from_secs(10), || {
                !processes_with("sleep 7797").is_empty()
            });
            std::mem::forget(fut);
        }
        std::mem::forget(session);
        assert!(!processes_with("sleep 8896").is_empty());
        // A new process resumes: the lock of the old one is gone with it.
        release_lock_of_forgotten_session(&provider, &id);
        let resumed = Session::resume(&provider, &id, None, RunOptions::default())
            .await
            .unwrap();
        assert!(
            processes_with("sleep 8896").is_empty(),
            "the interrupted attempt's daemon"
        );
        assert!(
            processes_with("sleep 7797").is_empty(),
            "the interrupted attempt"
        );
        assert!(
            !processes_with("sleep 8895").is_empty(),
            "the completed step's daemon"
        );
        drop(resumed);
        provider.destroy(&id).await.unwrap();
        assert!(processes_with("sleep 8895").is_empty());
    }

    /// A forgotten session still holds its lock (the kernel releases a lock when the
    /// process dies; in one test process it never does): close its descriptor.
    fn release_lock_of_forgotten_session(provider: &runbook_exec::LocalProvider, id: &str) {
        let lock = provider.sandbox_dir(id).join("control/lock");
        let target = std::fs::canonicalize(&lock).unwrap();
        for fd in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|p| p == target) {
                let n: i32 = fd.file_name().to_string_lossy().parse().unwrap();
                let _ = nix::unistd::close(n);
            }
        }
    }
}

mod cleanup {
    use super::*;

    #[tokio::test]
    #[ignore = "needs root"]
    async fn reap_cannot_take_a_sandbox_that_is_being_provisioned() {
        require_root();
        let (_root, provider) = provider();
        let request = ProvisionRequest::new("busy", Lifetime::Ephemeral);
        // Freshly provisioned, not yet used by a session: it is locked already.
        let sandbox = provider.provision(&request).await.unwrap();
        let reaped = provider.reap().await.unwrap();
        assert!(!reaped.destroyed.contains(&sandbox.id().to_owned()));
        assert!(
            reaped
                .skipped
                .iter()
                .any(|(id, why)| id == sandbox.id() && why.contains("in use")),
            "{reaped:?}"
        );
        assert!(provider.sandbox_dir(sandbox.id()).exists());
        let id = sandbox.id().to_owned();
        drop(sandbox);
        assert!(!provider.sandbox_dir(&id).exists());
    }

    #[tokio::test]
    #[ignore = "needs root"]
    async fn damaged_sandboxes_are_listed_reported_and_destroyable() {
        require_root();
        let (_root, provider) = provider();
        let make = |lifetime| ProvisionRequest::new("damaged", lifetime);
        let mut ids = Vec::new();
        for lifetime in [
            Lifetime::Ephemeral,
            Lifetime::Ephemeral,
            Lifetime::Ephemeral,
        ] {
            let mut s = provider.provision(&make(lifetime)).await.unwrap();
            s.keep(); // left behind, as by a killed run
            ids.push(s.id().to_owned());
        }
        let (no_control, garbled, intact) = (&ids[0], &ids[1], &ids[2]);
        std::fs::remove_dir_all(provider.sandbox_dir(no_control).join("control")).unwrap();
        std::fs::write(
            provider.sandbox_dir(garbled).join("meta.json"),
            "{ not json",
        )
        .unwrap();
        let list = provider.list().await.unwrap();
        let garbled_info = list.iter().find(|s| &s.id == garbled).expect("listed");
        assert!(garbled_info.damaged.as_deref().unwrap().contains("garbled"));
        // Reap goes past the damaged one and takes the others.
        let reaped = provider.reap().await.unwrap();
        assert!(reaped.destroyed.contains(no_control), "{reaped:?}");
        assert!(reaped.destroyed.contains(intact), "{reaped:?}");
        assert!(
            reaped
                .skipped
                .iter()
                .any(|(id, why)| id == garbled && why.contains("damaged"))
        );
        // The damaged one is destroyed by id, its user with it.
        let user = format!("rb-{}", garbled.rsplit('-').next().unwrap());
        assert!(nix::unistd::User::from_name(&user).unwrap().is_some());
        provider.destroy(garbled).await.unwrap();
        assert!(!provider.sandbox_dir(garbled).exists());
        assert!(nix::unistd::User::from_name(&user).unwrap().is_none());
        assert!(provider.list().await.unwrap().is_empty());
    }

    /// A state root deleted with a sandbox still in it (a test's temporary directory, an
    /// `rm -rf`): reap, from any state root, removes the user and cgroup left behind.
    #[tokio::test]
    #[ignore = "needs root"]
    async fn reap_removes_what_a_deleted_sandbox_left_outside_its_directory() {
        require_root();
        let (doomed_root, doomed) = provider();
        let request = ProvisionRequest::new("deleted", Lifetime::Persistent);
        let mut sandbox = doomed.provision(&request).await.unwrap();
        sandbox.keep();
        let id = sandbox.id().to_owned();
        drop(sandbox);
        let user = format!("rb-{}", id.rsplit('-').next().unwrap());
        std::fs::remove_dir_all(doomed_root.path().join("local")).unwrap();
        assert!(nix::unistd::User::from_name(&user).unwrap().is_some());
        let (_root, other) = provider();
        other.reap().await.unwrap();
        assert!(nix::unistd::User::from_name(&user).unwrap().is_none());
    }

    #[tokio::test]
    #[ignore = "needs root"]
    async fn destroying_a_busy_sandbox_says_who_holds_it() {
        require_root();
        let (_root, provider) = provider();
        let request = ProvisionRequest::new("held", Lifetime::Session);
        let sandbox = provider.provision(&request).await.unwrap();
        let err = provider.destroy(sandbox.id()).await.unwrap_err();
        assert!(matches!(err, ExecError::Locked { .. }), "{err}");
        assert!(err.to_string().contains(&std::process::id().to_string()));
    }
}

/// The runbook's own data (its variables) attacks what starts its commands: nothing it
/// sets may choose a program root runs, load code into root, or run anything before the
/// command is in its cgroup (issue: "The boundary, second round").
mod environment {
    use super::*;
    use std::collections::BTreeMap;

    use runbook_exec::{CommandSpec, OutputSink, Sandbox, Stream};

    struct Collect(Vec<u8>);

    impl OutputSink for Collect {
        fn output(&mut self, _: Stream, bytes: &[u8]) {
            self.0.extend_from_slice(bytes);
        }
    }

    /// Runs `command` in `sandbox` with `env` added, as a step would.
    pub(super) async fn run(
        sandbox: &dyn Sandbox,
        command: &str,
        env: &[(&str, &str)],
    ) -> runbook_exec::Result<(Option<i32>, String)> {
        let spec = CommandSpec {
            command: command.into(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            workdir: None,
            timeout: Duration::from_secs(20),
            errexit: true,
        };
        let mut out = Collect(Vec::new());
        let exit = sandbox.run(&spec, &mut out).await?;
        Ok((exit.code, String::from_utf8_lossy(&out.0).into_owned()))
    }

    /// A directory everybody may write, outside every sandbox: planted code reports here.
    pub(super) fn drop_box() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        d
    }

    pub(super) async fn provision(
        provider: &runbook_exec::LocalProvider,
        isolated: bool,
    ) -> Box<dyn Sandbox> {
        let request = ProvisionRequest::new("hostile-env", Lifetime::Session);
        provider
            .clone()
            .isolate_network(isolated)
            .provision(&request)
            .await
            .unwrap()
    }

    /// The cgroup line of a process, or "" when it is gone.
    fn cgroup_of(pid: i32) -> String {
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default()
    }

    /// After teardown nothing of the sandbox is left: no process, user, cgroup or netns.
    fn assert_nothing_left(id: &str, user: &str, needle: &str) {
        assert!(
            processes_with(needle).is_empty(),
            "`{needle}` survived teardown"
        );
        assert!(
            nix::unistd::User::from_name(user).unwrap().is_none(),
            "user {user} left behind"
        );
        let suffix = id.rsplit('-').next().unwrap();
        assert!(
            !std::path::Path::new("/run/netns")
                .join(format!("runbook-{suffix}"))
                .exists()
        );
        let cgroups = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mount = cgroups
            .lines()
            .find(|l| l.contains(" - cgroup2 "))
            .and_then(|l| l.split_whitespace().nth(4))
            .unwrap();
        assert!(
            !std::path::Path::new(mount)
                .join("runbook")
                .join(id)
                .exists()
        );
    }

    /// A step plants `bash`, `sh`, `nsenter`, `setpriv` and `env` in its home; a
    /// variable named `PATH` puts that directory first. None of them ever runs, as root
    /// or as the sandbox: the executor names its own programs by absolute paths. The
    /// command itself does see the runbook's `PATH`.
    #[tokio::test]
    #[ignore = "needs root"]
    async fn a_variable_named_path_cannot_choose_the_programs_that_start_a_command() {
        require_root();
        let (_root, provider) = provider();
        for isolated in [false, true] {
            let reports = drop_box();
            let pwned = reports.path().join("pwned");
            let mut sandbox = provision(&provider, isolated).await;
            let plant = format!(
                "mkdir -p bin && for p in bash sh nsenter setpriv env; do \
                 printf '#!/bin/sh\\necho \"%s uid=$(id -u)\" >> {}\\n' \"$p\" > bin/$p; \
                 chmod 755 bin/$p; done",
                pwned.display()
            );
            let (code, out) = run(&*sandbox, &plant, &[]).await.unwrap();
            assert_eq!(code, Some(0), "{out}");
            let home = format!("{}/work", provider.sandbox_dir(sandbox.id()).display());
            let path = format!("{home}/bin:/usr/bin:/bin");
            let (code, out) = run(&*sandbox, "command -v bash; echo ran", &[("PATH", &path)])
                .await
                .unwrap();
            assert_eq!(code, Some(0), "{out}");
            assert_eq!(
                out,
                format!("{home}/bin/bash\nran\n"),
                "isolated={isolated}"
            );
            assert!(
                !pwned.exists(),
                "isolated={isolated}: a planted program ran: {}",
                std::fs::read_to_string(&pwned).unwrap_or_default()
            );
            let (id, user) = (
                sandbox.id().to_owned(),
                sandbox.describe().await.unwrap().user,
            );
            sandbox.teardown().await.unwrap();
            assert_nothing_left(&id, &user, &id);
        }
    }

    /// A shared library whose constructor reports who loaded it and in which cgroup.
    fn reporting_library(dir: &std::path::Path, reports: &std::path::Path) -> std::path::PathBuf {
        let src = dir.join("report.c");
        std::fs::write(
            &src,
            r#"#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void report(void) {
  FILE *f = fopen(REPORTS, "a");
  char cg[2048] = "", exe[256] = "";
  FILE *c = fopen("/proc/self/cgroup", "r");
  if (c) { size_t m = fread(cg, 1, sizeof cg - 1, c); cg[m] = 0; fclose(c); }
  for (char *p = cg; *p; p++) if (*p == '\n') *p = ' ';
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) exe[n] = 0;
  if (f) { fprintf(f, "euid=%d exe=%s cgroup=%s\n", (int)geteuid(), exe, cg); fclose(f); }
}
"#,
        )
        .unwrap();
        let lib = dir.join("libreport.so");
        let status = std::process::Command::new("gcc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&lib)
            .arg(format!("-DREPORTS=\"{}\"", reports.display()))
            .arg(&src)
            .status()
            .expect("gcc (the README's test line installs it)");
        assert!(status.success());
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        lib
    }

    /// Before the executor moves it into its cgroup, the loader waits as the sandbox's
    /// user, outside: the sandbox's own processes (same uid) must not be able to trace it
    /// and make it fork there. It runs a copy of bash the user may not read, which the
    /// kernel makes non-dumpable: its `/proc` files belong to root. The system's bash run
    /// the same way is traceable (its files are the user's), so the check can fail.
    #[tokio::test]
    #[ignore = "needs root"]
    async fn the_loader_waits_where_the_sandbox_cannot_trace_it() {
        require_root();
        let (root, provider) = provider();
        let sandbox = provision(&provider, false).await;
        let (code, _) = run(&*sandbox, "true", &[]).await.unwrap();
        assert_eq!(code, Some(0));
        let private = root.path().join(".loader-bash");
        let meta = std::fs::metadata(&private).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o711));
        let user = sandbox.describe().await.unwrap().user;
        let uid = nix::unistd::User::from_name(&user)
            .unwrap()
            .unwrap()
            .uid
            .as_raw();
        let owner_of_waiting = |program: &std::path::Path| {
            use std::os::unix::process::CommandExt;
            let mut child = std::process::Command::new(program)
                .args(["-c", "read -r _"])
                .uid(uid)
                .gid(uid)
                .env_clear()
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mem = format!("/proc/{}/mem", child.id());
            let mut owner = 0;
            wait_for("the loader to start", Duration::from_secs(5), || {
                owner = std::fs::metadata(&mem).map(|m| m.uid()).unwrap_or(u32::MAX);
                // Until exec the child is still the test's (root's) fork.
                std::fs::read_link(format!("/proc/{}/exe", child.id()))
                    .is_ok_and(|exe| exe == program)
            });
            owner = std::fs::metadata(&mem).map(|m| m.uid()).unwrap_or(owner);
            drop(child.stdin.take());
            child.wait().unwrap();
            owner
        };
        assert_eq!(owner_of_waiting(&private), 0, "the loader is traceable");
        assert_eq!(
            owner_of_waiting(
                std::path::Path::new("/bin/bash")
                    .canonicalize()
                    .unwrap()
                    .as_path()
            ),
            uid
        );
        drop(sandbox);
    }

    /// `LD_PRELOAD` as a variable: the library loads into the command's own shell, as
    /// the sandbox's user and inside its cgroup, and never into anything root runs.
    #[tokio::test]
    #[ignore = "needs root"]
    async fn a_preloaded_library_never_runs_as_root_or_before_the_cgroup() {
        require_root();
        let (_root, provider) = provider();
        let lib_dir = tempfile::tempdir().unwrap();
        for isolated in [false, true] {
            let reports_dir = drop_box();
            let reports = reports_dir.path().join("loaded");
            let lib = reporting_library(lib_dir.path(), &reports);
            let mut sandbox = provision(&provider, isolated).await;
            let id = sandbox.id().to_owned();
            let lib = lib.to_string_lossy().into_owned();
            let (code, out) = run(&*sandbox, "echo ran", &[("LD_PRELOAD", &lib)])
                .await
                .unwrap();
            assert_eq!((code, out.as_str()), (Some(0), "ran\n"));
            let loaded = std::fs::read_to_string(&reports).expect("the command's shell loaded it");
            for line in loaded.lines() {
                assert!(
                    !line.starts_with("euid=0 "),
                    "isolated={isolated}: root loaded it: {line}"
                );
                assert!(
                    line.contains(&format!("/runbook/{id}/")),
                    "isolated={isolated}: code ran outside the sandbox's cgroup: {line}"
                );
            }
            let user = sandbox.describe().await.unwrap().user;
            sandbox.teardown().await.unwrap();
            assert_nothing_left(&id, &user, &id);
        }
    }

    /// Variables that change how bash starts (`BASH_ENV` running a daemon first,
    /// `POSIXLY_CORRECT` switching startup files off) start nothing outside the cgroup:
    /// the daemons die at teardown and the user goes. Names bash keeps for itself are
    /// refused before anything runs.
    #[tokio::test]
    #[ignore = "needs root"]
    async fn shell_startup_variables_start_nothing_outside_the_cgroup() {
        require_root();
        let (_root, provider) = provider();
        for isolated in [false, true] {
            let scripts = drop_box();
            let startup = scripts.path().join("startup.sh");
            std::fs::write(&startup, "(setsid sleep 8895 >/dev/null 2>&1 &)\n").unwrap();
            std::fs::set_permissions(&startup, std::fs::Permissions::from_mode(0o644)).unwrap();
            let startup = startup.to_string_lossy().into_owned();
            let mut sandbox = provision(&provider, isolated).await;
            let id = sandbox.id().to_owned();
            let user = sandbox.describe().await.unwrap().user;
            let (code, out) = run(&*sandbox, "echo one", &[("BASH_ENV", &startup)])
                .await
                .unwrap();
            assert_eq!((code, out.as_str()), (Some(0), "one\n"));
            let (code, out) = run(
                &*sandbox,
                "(setsid sleep 8896 >/dev/null 2>&1 &); echo two",
                &[("POSIXLY_CORRECT", "1"), ("ENV", &startup)],
            )
            .await
            .unwrap();
            assert_eq!((code, out.as_str()), (Some(0), "two\n"));
            // A daemon started in the background may not have exec'd `sleep` yet.
            wait_for("both daemons to start", Duration::from_secs(5), || {
                processes_with("sleep 889").len() >= 2
            });
            let daemons = processes_with("sleep 889");
            for pid in daemons {
                assert!(
                    cgroup_of(pid).contains(&format!("/runbook/{id}/")),
                    "isolated={isolated}: pid {pid} is outside: {}",
                    cgroup_of(pid)
                );
            }
            for reserved in ["SHELLOPTS", "BASHOPTS"] {
                let err = run(&*sandbox, "echo never", &[(reserved, "xtrace")])
                    .await
                    .unwrap_err();
                assert!(err.to_string().contains(reserved), "{err}");
            }
            sandbox.teardown().await.unwrap();
            assert_nothing_left(&id, &user, "sleep 889");
        }
    }
}

/// What a sandbox leaves in the machine's shared places outlives its processes, and the
/// next sandbox may get the same uid.
mod leftovers {
    use super::environment::{drop_box, provision, run};
    use super::*;

    /// The System V IPC objects (`shm`, `msg`, `sem`) owned by `uid`.
    fn ipc_of(uid: u32) -> Vec<String> {
        let mut out = Vec::new();
        for table in ["shm", "msg", "sem"] {
            let text = std::fs::read_to_string(format!("/proc/sysvipc/{table}")).unwrap();
            let mut lines = text.lines();
            let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
            let col = header.iter().position(|c| *c == "uid").unwrap();
            for line in lines {
                if line.split_whitespace().nth(col) == Some(uid.to_string().as_str()) {
                    out.push(format!("{table}: {line}"));
                }
            }
        }
        out
    }

    /// A sandbox writes private files in `/tmp`, `/var/tmp`, `/dev/shm` and inside a
    /// world-writable directory, and makes a shared memory segment, a message queue and
    /// a semaphore set; after teardown none is left, and the next sandbox (which may
    /// get the same uid) finds nothing of them.
    #[tokio::test]
    #[ignore = "needs root"]
    async fn a_sandbox_leaves_no_temporary_file_or_ipc_object_to_the_next() {
        require_root();
        let (_root, provider) = provider();
        let shared = drop_box();
        let mut first = provision(&provider, false).await;
        let tag = first.id().rsplit('-').next().unwrap().to_owned();
        let files = [
            format!("/tmp/rb-left-{tag}"),
            format!("/var/tmp/rb-left-{tag}"),
            format!("/dev/shm/rb-left-{tag}"),
            format!("/tmp/rb-leftdir-{tag}"),
            format!("{}/rb-left-{tag}", shared.path().display()),
        ];
        let write = format!(
            "umask 077; for f in {} {} {} {}; do echo first-secret > \"$f\"; done; \
             mkdir {} && echo first-secret > {}/f; ipcmk -M 4096; ipcmk -Q; ipcmk -S 1",
            files[0], files[1], files[2], files[4], files[3], files[3]
        );
        let (code, out) = run(&*first, &write, &[]).await.unwrap();
        assert_eq!(code, Some(0), "{out}");
        let user = first.describe().await.unwrap().user;
        let uid = nix::unistd::User::from_name(&user)
            .unwrap()
            .unwrap()
            .uid
            .as_raw();
        assert_eq!(ipc_of(uid).len(), 3, "the IPC objects were made");
        first.teardown().await.unwrap();
        for f in &files {
            assert!(
                !std::path::Path::new(f).exists(),
                "{f} outlived its sandbox"
            );
        }
        assert_eq!(ipc_of(uid), Vec::<String>::new());
        assert!(nix::unistd::User::from_name(&user).unwrap().is_none());

        let mut next = provision(&provider, false).await;
        let read = files
            .iter()
            .map(|f| format!("cat {f}/f {f} 2>/dev/null;"))
            .collect::<String>();
        let (_, out) = run(&*next, &format!("{read} ipcs -m -q -s; true"), &[])
            .await
            .unwrap();
        assert!(!out.contains("first-secret"), "{out}");
        let next_uid = nix::unistd::User::from_name(&next.describe().await.unwrap().user)
            .unwrap()
            .unwrap()
            .uid
            .as_raw();
        assert_eq!(ipc_of(next_uid), Vec::<String>::new());
        next.teardown().await.unwrap();
    }
}
