//! The `runbook` binary: start-up plus validating a 50-step runbook (issue: under 20 ms),
//! and `runbook run` against `ansible-playbook` on the same 50 trivial steps with
//! `connection: local` (issue: at least 100x faster), measured in the same run.
//!
//! Memory on the path users take: `runbook run` (package included) while one step prints
//! 1 GiB, then 2 GiB (issue: peak RSS under 64 MiB for both).
//!
//! `cargo bench --bench cli`. The ansible baseline runs when `ansible-playbook` is on the
//! PATH or `ANSIBLE_PLAYBOOK` names it (install it in a venv for the bench only:
//! `python3 -m venv /tmp/ansible && /tmp/ansible/bin/pip install ansible-core`).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("cli: bench");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("runbook-cli-bench-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = env!("CARGO_BIN_EXE_runbook");

    let fifty = dir.path().join("fifty.yaml");
    std::fs::write(&fifty, runbook::to_yaml_string(&support::realistic(50))).unwrap();
    let validate = support::median(51, || {
        let out = Command::new(exe)
            .arg("validate")
            .arg(&fifty)
            .output()
            .unwrap();
        assert!(out.status.success());
    });
    println!(
        "cli: start + validate a 50-step runbook: {:.1} ms (median of 51)",
        validate.as_secs_f64() * 1e3
    );

    let trivial = dir.path().join("trivial.yaml");
    std::fs::write(&trivial, runbook::to_yaml_string(&support::trivial(50))).unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    // `runbook run` in an ephemeral sandbox, replacing the package of the last run.
    let run_ephemeral = |file: &std::path::Path, out: &str, extra: &[&str]| {
        let status = Command::new(exe)
            .args(["run", file.to_str().unwrap(), "--lifetime", "ephemeral"])
            .args(extra)
            .args(["--force", "--out"])
            .arg(dir.path().join(out))
            .env("RUNBOOK_STATE_DIR", &state)
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
    };
    // Without the rehearsal: this compares running the steps with ansible running them.
    let run = support::median(5, || run_ephemeral(&trivial, "pkg", &["--no-rehearsal"]));
    println!(
        "cli: runbook run, 50 trivial steps with one check each: {:.0} ms",
        run.as_secs_f64() * 1e3
    );

    // Memory: the peak RSS of the `runbook` process itself (getrusage of the children
    // waited for: the largest so far, so each figure is an upper bound).
    for gib in [1u64, 2] {
        let bytes = gib << 30;
        let loud = dir.path().join(format!("loud-{gib}.yaml"));
        std::fs::write(
            &loud,
            format!(
                "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {{ name: loud }}\nsteps:\n  - id: print\n    title: Print {gib} GiB\n    run: head -c {bytes} /dev/zero | tr '\\000' y\n    readOnly: true\n    verify: [{{ run: echo ok, expect: {{ stdout: {{ equals: ok }} }} }}]\n"
            ),
        )
        .unwrap();
        let t = std::time::Instant::now();
        run_ephemeral(&loud, "loud-pkg", &[]);
        let peak_kib = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
            .unwrap()
            .max_rss();
        let shipped = std::fs::metadata(dir.path().join("loud-pkg/test-results/sandbox-log.txt"))
            .unwrap()
            .len();
        println!(
            "memory: runbook run, a step printing {gib} GiB: peak RSS {:.1} MiB, shipped log {:.1} MiB, {:.1} s",
            peak_kib as f64 / 1024.0,
            shipped as f64 / (1024.0 * 1024.0),
            t.elapsed().as_secs_f64()
        );
    }

    // Typed probes against bash: 200 steps `echo vN > fN.txt`, each verified by a `file`
    // check (no process), through `runbook run --no-rehearsal`, against a bash script
    // running the same 400 commands as `bash -c` (issue: at most 0.8x).
    let mut yaml =
        String::from("apiVersion: runbook/v1\nkind: Runbook\nmetadata: { name: files }\nsteps:\n");
    let mut script = String::from("set -e\n");
    for n in 0..200 {
        yaml.push_str(&format!(
            "  - id: s{n}\n    title: Step {n}\n    run: echo v{n} > f{n}.txt\n    readOnly: true\n    verify: [{{ file: {{ path: f{n}.txt, contains: v{n} }} }}]\n"
        ));
        script.push_str(&format!(
            "bash -c 'echo v{n} > f{n}.txt'\nbash -c 'grep -qF v{n} f{n}.txt'\n"
        ));
    }
    let files = dir.path().join("files.yaml");
    std::fs::write(&files, yaml).unwrap();
    let bash_dir = dir.path().join("bash-files");
    std::fs::create_dir(&bash_dir).unwrap();
    std::fs::write(bash_dir.join("baseline.sh"), script).unwrap();
    let baseline = support::median(5, || {
        let ok = Command::new("bash")
            .arg("baseline.sh")
            .current_dir(&bash_dir)
            .status()
            .unwrap()
            .success();
        assert!(ok);
    });
    let typed = support::median(5, || {
        run_ephemeral(&files, "files-pkg", &["--no-rehearsal"])
    });
    println!(
        "ratio: runbook run, 200 steps with file checks {:.0} ms / bash script, 400 commands {:.0} ms = {:.2}x",
        typed.as_secs_f64() * 1e3,
        baseline.as_secs_f64() * 1e3,
        typed.as_secs_f64() / baseline.as_secs_f64()
    );

    // Containment per command: 200 steps `echo vN > fN.txt`, each verified by a command
    // check, through `runbook run --no-rehearsal` (package written), against a bash script
    // running the same 400 commands as `bash -c` (issue: at most 1.15x). Paired: each run
    // of the one right after a run of the other, the median of the per-pair ratios.
    // The same runbook with a variable named LANGUAGE (one that acts at process start)
    // takes the two-exec path of the loader: what every command cost before the command
    // ran in its loader.
    let commands = |extra_var: bool| {
        let mut yaml =
            String::from("apiVersion: runbook/v1\nkind: Runbook\nmetadata: { name: commands }\n");
        if extra_var {
            yaml.push_str(
                "variables:\n  - { name: LANGUAGE, category: other, sandbox: C, production: C }\n",
            );
        }
        yaml.push_str("steps:\n");
        for n in 0..200 {
            yaml.push_str(&format!(
                "  - id: s{n}\n    title: Step {n}\n    run: echo v{n} > f{n}.txt\n    readOnly: true\n    verify: [{{ run: grep -qF v{n} f{n}.txt }}]\n"
            ));
        }
        let file = dir.path().join(if extra_var {
            "commands-two-exec.yaml"
        } else {
            "commands.yaml"
        });
        std::fs::write(&file, yaml).unwrap();
        file
    };
    let (one_exec, two_exec) = (commands(false), commands(true));
    let bash_script = || {
        let ok = Command::new("bash")
            .arg("baseline.sh")
            .current_dir(&bash_dir)
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    for (label, file) in [
        ("command checks", &one_exec),
        ("command checks, two-exec loader", &two_exec),
    ] {
        let mut pairs = Vec::new();
        for _ in 0..7 {
            let t = std::time::Instant::now();
            bash_script();
            let bash = t.elapsed();
            let t = std::time::Instant::now();
            run_ephemeral(file, "commands-pkg", &["--no-rehearsal"]);
            let runbook = t.elapsed();
            pairs.push((runbook.as_secs_f64() / bash.as_secs_f64(), runbook, bash));
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (ratio, runbook, bash) = pairs[pairs.len() / 2];
        println!(
            "ratio: runbook run, 200 steps with {label} {:.0} ms / bash script, 400 commands {:.0} ms = {ratio:.2}x (median of 7 pairs; range {:.2}x-{:.2}x)",
            runbook.as_secs_f64() * 1e3,
            bash.as_secs_f64() * 1e3,
            pairs[0].0,
            pairs[pairs.len() - 1].0,
        );
    }

    // The rehearsal's cost, whole process, on the quickstart example (issue: `runbook run`
    // at most 2.0x `runbook run --no-rehearsal`), paired, median of 7. For the record, the
    // sum of the rehearsal's script runs (deploy, verify twice, deploy again, rollback,
    // verify) of the median pair.
    let quickstart =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/runbook.yaml");
    let mut pairs = Vec::new();
    for _ in 0..7 {
        let t = std::time::Instant::now();
        run_ephemeral(&quickstart, "unrehearsed", &["--no-rehearsal"]);
        let without = t.elapsed();
        let t = std::time::Instant::now();
        run_ephemeral(&quickstart, "rehearsed", &[]);
        let with = t.elapsed();
        let read = |f: &str| {
            std::fs::read_to_string(dir.path().join("rehearsed/test-results").join(f)).unwrap()
        };
        let rehearsal: runbook::report::Rehearsal =
            serde_saphyr::from_str(&read("rehearsal.yaml")).unwrap();
        let scripts: u64 = rehearsal.runs.iter().map(|r| r.duration_ms).sum();
        pairs.push((
            with.as_secs_f64() / without.as_secs_f64(),
            with,
            without,
            scripts,
        ));
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (ratio, with, without, scripts) = pairs[pairs.len() / 2];
    println!(
        "ratio: rehearsal, runbook run {:.0} ms / runbook run --no-rehearsal {:.0} ms = {ratio:.2}x (quickstart, whole process, median of 7 pairs; range {:.2}x-{:.2}x; the scripts took {scripts} ms)",
        with.as_secs_f64() * 1e3,
        without.as_secs_f64() * 1e3,
        pairs[0].0,
        pairs[pairs.len() - 1].0,
    );

    let ansible = std::env::var("ANSIBLE_PLAYBOOK").unwrap_or_else(|_| "ansible-playbook".into());
    if Command::new(&ansible)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        println!("ansible: skipped (no ansible-playbook; see the header of benches/cli.rs)");
        return;
    }
    let mut playbook =
        String::from("- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n");
    for i in 0..50 {
        playbook.push_str(&format!(
            "    - name: step {i}\n      shell: \"true\"\n    - name: check {i}\n      shell: echo ok\n      register: out{i}\n      failed_when: out{i}.stdout != 'ok'\n"
        ));
    }
    // The interpreter beside ansible-playbook (its venv), else the system's python3.
    let python = std::path::Path::new(&ansible)
        .parent()
        .map(|d| d.join("python"))
        .filter(|p| p.exists())
        .map_or_else(
            || "/usr/bin/python3".to_owned(),
            |p| p.to_string_lossy().into_owned(),
        );
    let book = dir.path().join("playbook.yaml");
    std::fs::write(&book, playbook).unwrap();
    let baseline = support::median(3, || {
        let out = Command::new(&ansible)
            .arg("-i")
            .arg("localhost,")
            .arg(&book)
            .arg("-e")
            .arg(format!("ansible_python_interpreter={python}"))
            .env("ANSIBLE_HOST_KEY_CHECKING", "False")
            .env("ANSIBLE_LOCALHOST_WARNING", "False")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    });
    println!(
        "ratio: ansible-playbook {:.0} ms / runbook run {:.0} ms = {:.0}x faster",
        baseline.as_secs_f64() * 1e3,
        run.as_secs_f64() * 1e3,
        baseline.as_secs_f64() / run.as_secs_f64()
    );
}
