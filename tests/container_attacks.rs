//! The container provider attacked: a hostile runbook author (escaping the kill of a
//! timed-out command, writing through a planted link or FIFO, hiding a daemon) and a
//! demanding operator (reap and destroy on a shared engine, secrets in the engine's view,
//! images the steps cannot use). Against a real engine: `tests/container/engine.sh start`.

mod common;
#[path = "common/container.rs"]
mod container;

use container::{
    BOOKWORM, leftovers, ok, podman, provider, repo, runbook_cli, start_long_run, start_run,
};

use std::collections::BTreeMap;

use std::process::Command;
use std::time::{Duration, Instant};

use runbook::Lifetime;
use runbook::exec::{
    CommandSpec, ContainerProvider, ExecError, LocalProvider, OutputSink, Provider,
    ProvisionRequest, Sandbox, Stream,
};

/// Keeps what a command printed.
#[derive(Default)]
struct Keep(Vec<u8>);

impl OutputSink for Keep {
    fn output(&mut self, _: Stream, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

fn spec(command: &str, timeout: Duration) -> CommandSpec {
    CommandSpec {
        command: command.into(),
        env: BTreeMap::new(),
        workdir: None,
        timeout,
        errexit: false,
    }
}

/// `command` in `sandbox`, what it printed; it must exit 0.
async fn sh(sandbox: &dyn Sandbox, command: &str) -> String {
    let mut keep = Keep::default();
    let exit = sandbox
        .run(&spec(command, Duration::from_secs(30)), &mut keep)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&keep.0).into_owned();
    assert_eq!(exit.code, Some(0), "`{command}`: {text}");
    text
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a container engine and the test images: tests/container/engine.sh start"]
async fn a_timed_out_command_is_killed_quickly_with_its_daemon_whatever_its_variables_say() {
    let dir = common::workdir("runbook-attack-");
    let provider = provider(&dir.path().join("state")).await;
    let mut sandbox = provider
        .provision(&ProvisionRequest::new("attack-marker", Lifetime::Ephemeral))
        .await
        .unwrap();
    // A variable named after the kill marker, a daemon of its own session with its
    // output closed, and the command itself far past its timeout.
    let mut hostile = spec(
        "setsid sleep 301 < /dev/null > /dev/null 2>&1 & exec sleep 60",
        Duration::from_secs(1),
    );
    hostile
        .env
        .insert("RUNBOOK_COMMAND".into(), "not-the-marker".into());
    let started = Instant::now();
    let exit = sandbox.run(&hostile, &mut Keep::default()).await.unwrap();
    assert!(exit.timed_out, "{exit:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    let left = sh(
        sandbox.as_ref(),
        "ps -u 10001 -o pid=,args= | grep -v 'ps -u' || true",
    )
    .await;
    assert!(!left.contains("sleep"), "still running:\n{left}");
    sandbox.teardown().await.unwrap();
    assert!(
        leftovers("attack-marker").is_empty(),
        "{:?}",
        leftovers("attack-marker")
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a container engine and the test images: tests/container/engine.sh start"]
async fn config_files_stay_in_the_work_directory_and_a_planted_link_or_fifo_cannot_hijack_them() {
    let dir = common::workdir("runbook-attack-");
    let provider = provider(&dir.path().join("state")).await;
    let mut sandbox = provider
        .provision(&ProvisionRequest::new("attack-files", Lifetime::Ephemeral))
        .await
        .unwrap();
    for path in ["../escape.conf", "/etc/passwd", "a/../../b.conf"] {
        let e = sandbox.write_file(path, b"x\n").await.unwrap_err();
        assert!(matches!(e, ExecError::Usage(_)), "{path}: {e}");
    }
    // An earlier step plants a link to a file only root may write: writing the config
    // file through it fails (it is written as the sandbox's user), and /etc/passwd is
    // what it was.
    sh(sandbox.as_ref(), "ln -s /etc/passwd planted.conf").await;
    let mut evil = b"evil:x:0:0::/:/bin/bash\n".repeat(20_000);
    for size in [24, evil.len()] {
        evil.truncate(size);
        let e = sandbox
            .write_file("planted.conf", &evil)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("planted.conf") && e.contains("Permission denied"),
            "{size} bytes: {e}"
        );
    }
    let passwd = sh(sandbox.as_ref(), "cat /etc/passwd").await;
    assert!(!passwd.contains("evil"), "{passwd}");
    // A FIFO in the file's place: the write must neither hang nor wait out a timeout
    // (a config file larger than a pipe's buffer blocked before any timeout applied).
    sh(sandbox.as_ref(), "mkfifo fifo.conf").await;
    let started = Instant::now();
    let written = tokio::time::timeout(
        Duration::from_secs(120),
        sandbox.write_file("fifo.conf", &vec![b'x'; 1 << 20]),
    )
    .await
    .expect("writing a config file over a planted FIFO hung");
    let e = written.unwrap_err().to_string();
    assert!(
        e.contains("fifo.conf") && e.contains("not a regular file"),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    sandbox.teardown().await.unwrap();
    assert!(leftovers("attack-files").is_empty());
}

#[test]
#[ignore = "needs a container engine and the test images: tests/container/engine.sh start"]
fn reap_with_another_state_root_leaves_a_running_sandbox_alone() {
    // Two operators (or two CI jobs, or two test processes) share one engine, each with a
    // state root of their own: one's reap, list and `destroy --all` must not touch the
    // other's running sandbox.
    let dir = common::workdir("runbook-attack-");
    let (mut child, container) = start_long_run(dir.path(), "state-a", "attack-shared");
    let listed = ok(&runbook_cli(
        dir.path(),
        "state-b",
        &["sandbox", "--provider", "container", "list"],
    ));
    assert!(!listed.contains("attack-shared"), "{listed}");
    ok(&runbook_cli(
        dir.path(),
        "state-b",
        &["sandbox", "--provider", "container", "destroy", "--all"],
    ));
    let out = runbook_cli(
        dir.path(),
        "state-b",
        &["sandbox", "--provider", "container", "reap"],
    );
    ok(&out);
    let still = leftovers("attack-shared");
    let alive = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    ok(&runbook_cli(
        dir.path(),
        "state-a",
        &["sandbox", "--provider", "container", "reap"],
    ));
    assert!(
        still.iter().any(|l| l.ends_with(&container)) && alive,
        "another state root's reap removed {container}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        leftovers("attack-shared").is_empty(),
        "{:?}",
        leftovers("attack-shared")
    );
}

#[test]
#[ignore = "needs a container engine and the test images: tests/container/engine.sh start"]
fn destroying_an_unknown_id_says_not_found_and_spares_a_container_that_only_has_its_name() {
    let dir = common::workdir("runbook-attack-");
    // The operator's own container, which happens to be called `rb-<something>`.
    let victim = "rb-attack-not-a-sandbox";
    let _ = Command::new("podman")
        .args(["rm", "-f", victim])
        .env(
            "CONTAINERS_CONF",
            repo().join("tests/container/containers.conf"),
        )
        .output();
    podman(&["create", "--name", victim, BOOKWORM, "sleep", "1"]);
    let out = runbook_cli(
        dir.path(),
        "state",
        &[
            "sandbox",
            "--provider",
            "container",
            "destroy",
            "attack-not-a-sandbox",
        ],
    );
    let still = podman(&["ps", "-a", "--format", "{{.Names}}"]);
    podman(&["rm", "-f", victim]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("not found") || said.contains("no sandbox"),
        "{said}"
    );
    assert!(
        still.lines().any(|l| l == victim),
        "destroy removed {victim}, a container that is no sandbox: {said}"
    );
    // An empty id: the engine's label filter `KEY=` matches every sandbox of every user.
    let fake = "rb-attack-fake-00000000";
    podman(&[
        "create",
        "--name",
        fake,
        "--label",
        "runbook.dev/managed-by=runbook",
        "--label",
        "runbook.dev/runbook=attack-fake",
        "--label",
        "runbook.dev/sandbox=attack-fake-00000000",
        "--label",
        "runbook.dev/lifetime=persistent",
        BOOKWORM,
        "sleep",
        "1",
    ]);
    let out = runbook_cli(
        dir.path(),
        "state",
        &["sandbox", "--provider", "container", "destroy", ""],
    );
    let still = leftovers("attack-fake");
    podman(&["rm", "-f", fake]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(!still.is_empty(), "`destroy ''` removed {fake}: {said}");
    // An id that is no name at all: still plain words, no engine error.
    let out = runbook_cli(
        dir.path(),
        "state",
        &["sandbox", "--provider", "container", "destroy", "../etc"],
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(!said.contains("HTTP"), "{said}");
}

#[test]
#[ignore = "needs a container engine and the test images: tests/container/engine.sh start"]
fn a_generated_secret_is_nowhere_the_engine_or_the_package_shows() {
    let dir = common::workdir("runbook-attack-");
    let file = dir.path().join("secret.yaml");
    std::fs::write(
        &file,
        "apiVersion: runbook/v1\nkind: Runbook\nmetadata: { name: attack-secret }\n\
         variables:\n  - name: DB_PASSWORD\n    category: credential\n    generate: true\n\
         \x20   secret: { source: environment, reference: DB_PASSWORD }\n\
         configFiles:\n  - path: config/app.conf\n    content: \"password = ${DB_PASSWORD}\\n\"\n\
         steps:\n  - id: use\n    title: Use the password\n    readOnly: true\n\
         \x20   run: printf '%s' \"$DB_PASSWORD\" > pw && echo \"$DB_PASSWORD\"\n\
         \x20   verify:\n      - name: it is there\n        file: { path: pw, contains: \"${DB_PASSWORD}\" }\n",
    )
    .unwrap();
    let out = ok(&runbook_cli(
        dir.path(),
        "state",
        &[
            "run",
            &file.to_string_lossy(),
            "--provider",
            "container",
            "--image",
            BOOKWORM,
            "--keep",
            "--no-rehearsal",
            "--out",
            "package",
            "--events",
            "ndjson",
        ],
    ));
    let id = out
        .lines()
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["event"] == "sandboxReady").then(|| v["id"].as_str().unwrap().to_owned())
        })
        .unwrap();
    let container = format!("rb-{id}");
    let secret = podman(&["exec", &container, "cat", "/sandbox/work/pw"]);
    assert_eq!(secret.len(), 32, "{secret}");
    // The engine's view of the container: the exec's environment is not in its config.
    let inspected = podman(&["container", "inspect", &container]);
    let mut seen = Vec::new();
    if inspected.contains(&secret) {
        seen.push("podman inspect".to_owned());
    }
    // The package, the state root (logs, state) and what the run printed.
    let mut dirs = vec![dir.path().join("package"), dir.path().join("state")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.file_name().is_some_and(|n| n == "state.json") {
                // A persistent sandbox's values, for resume: its owner's only.
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&p).unwrap().permissions().mode();
                assert_eq!(mode & 0o077, 0, "{} is {mode:o}", p.display());
            } else if std::fs::read(&p)
                .unwrap()
                .windows(secret.len())
                .any(|w| w == secret.as_bytes())
            {
                seen.push(p.display().to_string());
            }
        }
    }
    if out.contains(&secret) {
        seen.push("the run's output".into());
    }
    ok(&runbook_cli(
        dir.path(),
        "state",
        &["sandbox", "--provider", "container", "destroy", &id],
    ));
    assert!(seen.is_empty(), "the secret is in {seen:?}");
    assert!(leftovers("attack-secret").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a container engine and the test images: tests/container/engine.sh start"]
async fn an_image_without_bash_is_refused_in_plain_words_and_leaves_no_container_or_network() {
    let image = "localhost/runbook-test/attack-no-bash:latest";
    let tmp = "attack-no-bash-build";
    let _ = Command::new("podman")
        .args(["rm", "-f", tmp])
        .env(
            "CONTAINERS_CONF",
            repo().join("tests/container/containers.conf"),
        )
        .output();
    podman(&["run", "--name", tmp, BOOKWORM, "rm", "/usr/bin/bash"]);
    podman(&["commit", "--quiet", tmp, image]);
    podman(&["rm", "-f", tmp]);
    let dir = common::workdir("runbook-attack-");
    let provider =
        ContainerProvider::connect(LocalProvider::with_root(dir.path().join("state")), None)
            .await
            .unwrap()
            .image(image)
            .network(runbook::exec::ContainerNetwork::Private);
    let Err(e) = provider
        .provision(&ProvisionRequest::new(
            "attack-no-bash",
            Lifetime::Ephemeral,
        ))
        .await
    else {
        panic!("an image without bash was taken");
    };
    let e = e.to_string();
    podman(&["rmi", image]);
    assert!(e.contains("the image has no bash"), "{e}");
    assert!(!e.contains("Error {") && !e.contains("status_code"), "{e}");
    assert!(
        leftovers("attack-no-bash").is_empty(),
        "{:?}",
        leftovers("attack-no-bash")
    );
    let listed = provider.list().await.unwrap();
    assert!(
        listed.iter().all(|s| s.runbook != "attack-no-bash"),
        "{listed:?}"
    );
}

#[test]
#[ignore = "needs a container engine and the test images: tests/container/engine.sh start"]
fn a_step_that_prints_a_gibibyte_leaves_the_runs_memory_bounded() {
    let dir = common::workdir("runbook-attack-");
    let file = dir.path().join("loud.yaml");
    std::fs::write(
        &file,
        "apiVersion: runbook/v1\nkind: Runbook\nmetadata: { name: attack-loud }\n\
         steps:\n  - id: shout\n    title: Print 1 GiB\n    readOnly: true\n    timeout: 600s\n\
         \x20   run: head -c 1G /dev/zero | tr '\\0' x; echo; echo done >&2\n\
         \x20   verify:\n      - name: t\n        run: 'true'\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args([
            "run",
            &file.to_string_lossy(),
            "--provider",
            "container",
            "--image",
            BOOKWORM,
            "--no-rehearsal",
            "--out",
            "package",
        ])
        .current_dir(dir.path())
        .env("RUNBOOK_STATE_DIR", dir.path().join("state"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The run's peak resident memory, read while it lives.
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    let exit = loop {
        if let Some(hwm) = std::fs::read_to_string(&status).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        }) {
            peak_kib = peak_kib.max(hwm);
        }
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "{exit:?}");
    assert!(peak_kib > 0);
    assert!(
        peak_kib < 256 * 1024,
        "the run held {} MiB for a step's 1 GiB of output",
        peak_kib / 1024
    );
    let log = std::fs::metadata(dir.path().join("package")).is_ok();
    assert!(log);
    assert!(leftovers("attack-loud").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a container engine and the test images: tests/container/engine.sh start"]
async fn a_process_check_does_not_find_the_containers_own_waiting_process() {
    let dir = common::workdir("runbook-attack-");
    let provider = provider(&dir.path().join("state")).await;
    let mut sandbox = provider
        .provision(&ProvisionRequest::new(
            "attack-process",
            Lifetime::Ephemeral,
        ))
        .await
        .unwrap();
    let sleep = runbook::Probe::Process(runbook::ProcessProbe {
        name: "sleep".into(),
    });
    // No step started a `sleep`: the check must not pass (the container's own process
    // was `sleep infinity`).
    let seen = sandbox.probe(&sleep).await.unwrap();
    assert!(!seen.satisfied, "{seen:?}");
    sh(
        sandbox.as_ref(),
        "setsid sleep 300 < /dev/null > /dev/null 2>&1 &",
    )
    .await;
    let seen = sandbox.probe(&sleep).await.unwrap();
    assert!(seen.satisfied, "{seen:?}");
    sandbox.teardown().await.unwrap();
    assert!(leftovers("attack-process").is_empty());
}

#[test]
#[ignore = "needs a container engine and the test images: tests/container/engine.sh start"]
fn reap_removes_a_network_a_stopped_provisioning_left_and_spares_another_roots() {
    // A run stopped between making its sandbox's network and its container leaves the
    // network alone: labelled, its control directory gone.
    let dir = common::workdir("runbook-attack-");
    let elsewhere = dir.path().join("other-root/control");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let make = |name: &str, control: &str| {
        let labels = [
            "runbook.dev/managed-by=runbook".to_owned(),
            "runbook.dev/runbook=attack-net".to_owned(),
            format!("runbook.dev/sandbox={}", name.trim_start_matches("rb-")),
            "runbook.dev/lifetime=ephemeral".to_owned(),
            "runbook.dev/expires-at=2999-01-01T00:00:00Z".to_owned(),
            format!("runbook.dev/control={control}"),
        ];
        let mut args = vec!["network", "create"];
        for l in &labels {
            args.extend(["--label", l]);
        }
        args.push(name);
        podman(&args);
    };
    make(
        "rb-attack-net-00000001",
        "/nonexistent/runbook-attack/control",
    );
    make("rb-attack-net-00000002", &elsewhere.to_string_lossy());
    let out = runbook_cli(
        dir.path(),
        "state",
        &["sandbox", "--provider", "container", "reap"],
    );
    let left = leftovers("attack-net");
    for l in &left {
        podman(&["network", "rm", l.trim_start_matches("network ls: ")]);
    }
    ok(&out);
    assert_eq!(
        left,
        vec!["network ls: rb-attack-net-00000002".to_owned()],
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "needs a container engine and the test images: tests/container/engine.sh start"]
fn sigterm_during_a_kept_run_leaves_no_step_running_in_the_kept_container() {
    let dir = common::workdir("runbook-attack-");
    let (mut child, container) = start_run(dir.path(), "state", "attack-kept", &["--keep"]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(!child.wait().unwrap().success());
    let running = podman(&[
        "exec",
        &container,
        "sh",
        "-c",
        "ps -u 10001 -o args= || true",
    ]);
    let id = container.trim_start_matches("rb-");
    ok(&runbook_cli(
        dir.path(),
        "state",
        &["sandbox", "--provider", "container", "destroy", id],
    ));
    assert!(
        !running.contains("sleep 120"),
        "the interrupted step still runs in {container}:\n{running}"
    );
    assert!(leftovers("attack-kept").is_empty());
}
