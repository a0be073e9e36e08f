//! The package: snapshots of what a human reads, scripts that pass shellcheck, no
//! secret, deterministic bytes, atomic writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use proptest::prelude::*;
use runbook_core::report::{
    Attempt, CheckRecord, CommandOutput, Report, RollbackExercise, SandboxDescription, StepRecord,
    StepStatus, ToolVersion, Verdict,
};
use runbook_core::{Category, Check, ConfigFile, Lifetime, Runbook, SecretSource, Step, Variable};
use runbook_render::{Evidence, Package, RenderError};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn examples() -> Vec<(String, Runbook)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(repo().join("examples"))
        .unwrap()
        .flatten()
    {
        let path = entry.path().join("runbook.yaml");
        if path.exists() {
            let name = entry.file_name().to_string_lossy().into_owned();
            out.push((name, runbook_core::load(&path).unwrap().0));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A report as a sandbox run of `runbook` would produce, with fixed times.
fn fixed_report(runbook: &Runbook) -> Report {
    let steps = runbook
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| StepRecord {
            id: s.id.clone(),
            title: s.title.clone(),
            status: StepStatus::Passed,
            attempts: vec![Attempt {
                command: s.run.clone(),
                output: CommandOutput {
                    exit_code: Some(0),
                    stdout: "ok\n".into(),
                    duration_ms: 1000 * (i as u64 + 1),
                    ..Default::default()
                },
                duration_ms: 1200 * (i as u64 + 1),
                checks: s
                    .verify
                    .iter()
                    .map(|c| CheckRecord {
                        name: c.label(),
                        command: c.command_text().map(str::to_owned),
                        passed: true,
                        attempts: 1,
                        expected: c.expectation(),
                        actual: "as expected".into(),
                        duration_ms: 100,
                    })
                    .collect(),
                failure: String::new(),
                failure_kind: None,
                diagnostics: String::new(),
                ..Default::default()
            }],
        })
        .collect();
    Report {
        runbook: runbook.metadata.name.clone(),
        verdict: Verdict::Passed,
        started_at: "2026-11-26T12:00:00Z".into(),
        duration_ms: 9000,
        sandbox: SandboxDescription {
            provider: "local".into(),
            id: format!("{}-0000", runbook.metadata.name),
            lifetime: Some(Lifetime::Session),
            os: "Debian GNU/Linux 12 (bookworm) (Linux 6.1.0)".into(),
            nodes: 1,
            network_isolated: false,
            user: "nobody".into(),
            path: "/usr/local/bin:/usr/bin:/bin".into(),
            versions: [("bash".to_owned(), "5.2.15(1)-release".to_owned())].into(),
            ..SandboxDescription::default()
        },
        preflight: runbook
            .prerequisites
            .iter()
            .map(|p| ToolVersion {
                tool: p.tool.clone(),
                required: p.version.clone(),
                detected: Some("15.18.0".into()),
                satisfied: true,
                location: Some(format!("/usr/bin/{}", p.tool)),
            })
            .collect(),
        steps,
        rollback: Some(RollbackExercise {
            verdict: Verdict::Passed,
            steps: Vec::new(),
            purpose: runbook_core::report::RollbackPurpose::Exercise,
        }),
        restores: Vec::new(),
        rehearsal: None,
        settings: None,
    }
}

fn shellcheck(path: &Path) {
    let out = Command::new("shellcheck")
        .arg("--shell=bash")
        .arg(path)
        .output()
        .expect("shellcheck is installed (apt-get install shellcheck)");
    assert!(
        out.status.success(),
        "shellcheck {}:\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout)
    );
    let out = Command::new("bash").arg("-n").arg(path).output().unwrap();
    assert!(
        out.status.success(),
        "bash -n {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn snapshots_of_every_example_package() {
    for (name, runbook) in examples() {
        let report = fixed_report(&runbook);
        let package = Package::render(
            &runbook,
            Some(Evidence {
                report: &report,
                log: Some("log\n"),
            }),
            &[],
        )
        .unwrap();
        for file in [
            "README.md",
            "adaptation-checklist.md",
            "scripts/deploy.sh",
            "scripts/rollback.sh",
            "scripts/verify.sh",
            "versions.yaml",
        ] {
            insta::assert_snapshot!(
                format!("{name}__{}", file.replace('/', "_")),
                package.text(file).unwrap()
            );
        }
        let untested = Package::render(&runbook, None, &[]).unwrap();
        insta::assert_snapshot!(
            format!("{name}__untested_README.md"),
            untested.text("README.md").unwrap()
        );
    }
}

#[test]
fn every_example_script_passes_bash_n_and_shellcheck() {
    let dir = tempfile::tempdir().unwrap();
    for (name, runbook) in examples() {
        let package = Package::render(&runbook, None, &[]).unwrap();
        let target = dir.path().join(&name);
        package.write_to(&target, false).unwrap();
        for script in ["deploy.sh", "rollback.sh", "verify.sh"] {
            shellcheck(&target.join("scripts").join(script));
        }
    }
}

/// The shared bash is one source file each (every script holds a copy of library.sh,
/// deploy.sh and rollback.sh of journal.sh): shellcheck checks each as a file, as it
/// stands in the source tree, by its own `# shellcheck shell=bash` directive (no
/// `--shell` here), besides checking every rendered script as a whole.
#[test]
fn the_shared_library_passes_shellcheck_as_a_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scripts");
    for file in ["library.sh", "journal.sh"] {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# shellcheck shell=bash\n"),
            "{file} names its shell for shellcheck"
        );
        let out = Command::new("shellcheck")
            .arg(&path)
            .output()
            .expect("shellcheck is installed (apt-get install shellcheck)");
        assert!(
            out.status.success(),
            "shellcheck {}:\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout)
        );
        let out = Command::new("bash").arg("-n").arg(&path).output().unwrap();
        assert!(out.status.success(), "bash -n {file}: {out:?}");
    }
}

#[test]
fn the_package_has_every_file_and_checksums_that_verify() {
    let (_, runbook) = examples()
        .into_iter()
        .find(|(n, _)| n == "postgres")
        .unwrap();
    let report = fixed_report(&runbook);
    let package = Package::render(
        &runbook,
        Some(Evidence {
            report: &report,
            log: Some("the log\n"),
        }),
        &[],
    )
    .unwrap();
    let paths: Vec<&str> = package.paths().collect();
    for want in [
        "README.md",
        "runbook.yaml",
        "runbook.schema.json",
        "config/postgresql.conf",
        "scripts/deploy.sh",
        "scripts/rollback.sh",
        "scripts/verify.sh",
        "test-results/sandbox-log.txt",
        "test-results/test-summary.yaml",
        "test-results/junit.xml",
        "adaptation-checklist.md",
        "versions.yaml",
        "SHA256SUMS",
    ] {
        assert!(paths.contains(&want), "missing {want}: {paths:?}");
    }
    // runbook.yaml parses back to the same model; the summary parses back to the report.
    assert_eq!(
        runbook_core::from_yaml_str(package.text("runbook.yaml").unwrap()).unwrap(),
        runbook
    );
    assert_eq!(
        runbook_core::report_from_yaml_str(package.text("test-results/test-summary.yaml").unwrap())
            .unwrap(),
        report
    );
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("handoff-package");
    package.write_to(&target, false).unwrap();
    let out = Command::new("sha256sum")
        .arg("-c")
        .arg("SHA256SUMS")
        .current_dir(&target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let readme = package.text("README.md").unwrap();
    assert!(
        readme.contains("**Result:** Success (1.2 seconds)"),
        "{readme}"
    );
    assert!(readme.contains("```mermaid\ngantt"));
    assert!(readme.contains(
        "- [ ] **Port** (`PGPORT`): change from `55432` to the port it uses in production."
    ));
    assert!(
        readme.contains("**Known issues:**")
            && readme.contains("permission denied for schema public")
    );
    let junit = package.text("test-results/junit.xml").unwrap();
    assert!(junit.contains("tests=\"3\" failures=\"0\""), "{junit}");
}

#[test]
fn rendering_is_deterministic() {
    for (_, runbook) in examples() {
        let report = fixed_report(&runbook);
        let a = Package::render(
            &runbook,
            Some(Evidence {
                report: &report,
                log: None,
            }),
            &[],
        )
        .unwrap();
        let b = Package::render(
            &runbook,
            Some(Evidence {
                report: &report,
                log: None,
            }),
            &[],
        )
        .unwrap();
        assert_eq!(a, b);
    }
}

#[test]
fn writing_is_atomic_and_refuses_to_clobber() {
    let (_, runbook) = examples().remove(0);
    let package = Package::render(&runbook, None, &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("pkg");
    package.write_to(&target, false).unwrap();
    assert!(matches!(
        package.write_to(&target, false),
        Err(RenderError::Exists(_))
    ));
    // A file the writer did not write is never deleted, not even when asked to replace.
    std::fs::write(target.join("notes.txt"), "mine").unwrap();
    let err = package.write_to(&target, true).unwrap_err();
    assert!(
        err.to_string()
            .contains("`notes.txt` is not a file of the package"),
        "{err}"
    );
    assert!(target.join("notes.txt").exists());
    std::fs::remove_file(target.join("notes.txt")).unwrap();
    // Nor is a package file someone changed.
    std::fs::write(target.join("README.md"), "edited").unwrap();
    let err = package.write_to(&target, true).unwrap_err();
    assert!(err.to_string().contains("`README.md` was changed"), "{err}");
    std::fs::write(target.join("README.md"), package.get("README.md").unwrap()).unwrap();
    package.write_to(&target, true).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(target.join("scripts/deploy.sh"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o755);
}

#[test]
fn a_config_path_outside_the_package_is_refused() {
    let runbook = Runbook::builder("escape")
        .config_file(ConfigFile::new("config/../../etc/passwd", "x"))
        .step(
            Step::new("a", "A")
                .run("true")
                .read_only()
                .verify(Check::command("true").stdout_equals("")),
        )
        .build_unchecked();
    assert!(matches!(
        Package::render(&runbook, None, &[]),
        Err(RenderError::BadPath(_))
    ));
}

fn runbook_with_secret(secret: &str, leak_into_note: bool) -> Runbook {
    let mut step = Step::new("use", "Use the secret")
        .run("printf '%s' \"$TOKEN\" > token")
        .verify(Check::command("wc -c < token").stdout_matches("[0-9]+"))
        .rollback("rm token");
    if leak_into_note {
        step = step.note(format!("the sandbox token was {secret}"));
    }
    Runbook::builder("secrets")
        .variable(
            Variable::new("TOKEN", Category::Credential)
                .secret(SecretSource::Vault, "secret/token")
                .generated(),
        )
        .step(step)
        .build_unchecked()
}

proptest! {
    #[test]
    fn no_secret_reaches_the_package(secret in "[ -~]{6,24}", leak in any::<bool>()) {
        // Secrets of any printable content, regex and shell metacharacters included.
        let runbook = runbook_with_secret(&secret, leak);
        let clean = Package::render(&runbook_with_secret("", false), None, &[]).unwrap();
        let already_there = clean.paths().any(|p| clean.get(p).unwrap().windows(secret.len()).any(|w| w == secret.as_bytes()));
        match Package::render(&runbook, None, &[&secret]) {
            Ok(p) => {
                prop_assert!(!leak || already_there);
                for path in p.paths() {
                    let bytes = p.get(path).unwrap();
                    prop_assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{} holds the secret", path);
                }
            }
            Err(RenderError::SecretInPackage { file, .. }) => prop_assert!(leak || already_there, "false alarm in {}", file),
            Err(e) => prop_assert!(false, "{}", e),
        }
    }
}

#[test]
fn a_literal_secret_sandbox_value_is_not_shipped() {
    let runbook = Runbook::builder("literal")
        .variable(
            Variable::new("TOKEN", Category::Credential)
                .secret(SecretSource::Vault, "secret/t")
                .sandbox("hunter2-sandbox"),
        )
        .step(
            Step::new("use", "Use")
                .run("test -n \"$TOKEN\"")
                .read_only()
                .verify(Check::command("echo ok").stdout_equals("ok")),
        )
        .build()
        .unwrap()
        .runbook;
    let package = Package::render(&runbook, None, &[]).unwrap();
    let shipped = runbook_core::from_yaml_str(package.text("runbook.yaml").unwrap()).unwrap();
    assert_eq!(shipped.variables[0].sandbox, None);
    assert!(
        shipped.variables[0].generate,
        "the sandbox gets a generated value instead"
    );
    assert!(
        package
            .paths()
            .all(|p| !package.text(p).unwrap_or("").contains("hunter2"))
    );
}

/// A run's package records the values it used; a value of a variable that hides its value
/// is never recorded, even when the caller passes one.
#[test]
fn a_run_records_its_values_and_never_a_hidden_one() {
    let runbook = Runbook::builder("values")
        .variable(
            Variable::new("PORT", Category::Endpoint)
                .sandbox("8080")
                .production("yours"),
        )
        .variable(Variable::new("TOKEN", Category::Credential).generated())
        .step(
            Step::new("use", "Use")
                .run("test -n \"$TOKEN$PORT\"")
                .read_only()
                .verify(Check::command("echo ok").stdout_equals("ok")),
        )
        .build()
        .unwrap()
        .runbook;
    let report = fixed_report(&runbook);
    let used = BTreeMap::from([
        ("PORT".to_owned(), "18080".to_owned()),
        ("TOKEN".to_owned(), "tok-not-shipped".to_owned()),
    ]);
    let evidence = Evidence {
        report: &report,
        log: None,
    };
    let package = Package::render_run(&runbook, &used, evidence, &[]).unwrap();
    let shipped = runbook_core::from_yaml_str(package.text("runbook.yaml").unwrap()).unwrap();
    assert_eq!(shipped.variables[0].sandbox.as_deref(), Some("18080"));
    assert_eq!(shipped.variables[1].sandbox, None);
    assert!(
        package
            .paths()
            .all(|p| !package.text(p).unwrap_or("").contains("tok-not-shipped"))
    );
}

#[test]
fn a_secret_in_the_log_or_report_stops_the_package() {
    let (_, runbook) = examples()
        .into_iter()
        .find(|(n, _)| n == "quickstart")
        .unwrap();
    let report = fixed_report(&runbook);
    let err = Package::render(
        &runbook,
        Some(Evidence {
            report: &report,
            log: Some("token=abc\"def\n"),
        }),
        &["abc\"def"],
    )
    .unwrap_err();
    assert!(
        matches!(&err, RenderError::SecretInPackage { file, .. } if file == "test-results/sandbox-log.txt"),
        "{err}"
    );
}

#[test]
fn a_failed_rehearsal_is_said_everywhere() {
    use runbook_core::report::{Rehearsal, ScriptRun};
    let (_, runbook) = examples().remove(0);
    let mut report = fixed_report(&runbook);
    report.rehearsal = Some(Rehearsal {
        verdict: Verdict::Failed,
        sandbox: "quickstart-rh".into(),
        failure: "phase `verify again`: `scripts/verify.sh` exited 1, expected exit 0".into(),
        runs: vec![ScriptRun {
            phase: "verify again".into(),
            command: "scripts/verify.sh".into(),
            expected: "exit 0".into(),
            exit_code: Some(1),
            passed: false,
            duration_ms: 12,
            output: "    FAILED: rows: expected 1; saw 2".into(),
        }],
        ..Rehearsal::default()
    });
    let package = Package::render(
        &runbook,
        Some(Evidence {
            report: &report,
            log: Some("log\n"),
        }),
        &[],
    )
    .unwrap();
    for file in [
        "README.md",
        "adaptation-checklist.md",
        "scripts/deploy.sh",
        "scripts/rollback.sh",
    ] {
        assert!(
            package
                .text(file)
                .unwrap()
                .contains("REHEARSAL FAILED: phase `verify again`"),
            "{file}"
        );
    }
    assert!(
        package
            .text("test-results/rehearsal.yaml")
            .unwrap()
            .contains("verify again")
    );
    let junit = package.text("test-results/junit.xml").unwrap();
    assert!(
        junit.contains(".rehearsal\" tests=\"1\" failures=\"1\""),
        "{junit}"
    );
    assert!(
        package
            .text("SHA256SUMS")
            .unwrap()
            .contains("test-results/rehearsal.yaml")
    );
}

#[test]
fn the_scripts_time_out_as_the_tested_run_did() {
    let (_, runbook) = examples().remove(0);
    let mut report = fixed_report(&runbook);
    report.settings = Some(runbook_core::report::RunSettings {
        step_timeout_ms: 42_000,
        check_timeout_ms: 7_000,
    });
    let evidence = Evidence {
        report: &report,
        log: None,
    };
    let package = Package::render(&runbook, Some(evidence), &[]).unwrap();
    let deploy = package.text("scripts/deploy.sh").unwrap();
    assert!(
        deploy.contains("CHECK_TIMEOUT=\"${RUNBOOK_CHECK_TIMEOUT:-7}\""),
        "{deploy}"
    );
    let untimed = runbook.steps.iter().find(|s| s.timeout.is_none()).unwrap();
    assert!(
        deploy.contains(&format!("run_step '{}' ", untimed.id)) && deploy.contains(" 42 '"),
        "{deploy}"
    );
}

/// Writes the untested package of a runbook whose one config file is `template`, with the
/// variables `values` names declared, runs its `deploy.sh --render-config` with `values`
/// in the environment (real bash), and returns the bytes it wrote.
fn filled_by_deploy_sh(template: &str, values: &BTreeMap<String, String>) -> Vec<u8> {
    let mut builder = Runbook::builder("fill");
    for name in values.keys() {
        builder = builder.variable(
            Variable::new(name, Category::Other)
                .sandbox("x")
                .production("anything"),
        );
    }
    let runbook = builder
        .config_file(ConfigFile::new("config/app.conf", template))
        .step(
            Step::new("a", "A")
                .run("true")
                .read_only()
                .verify(Check::command("true").stdout_equals("")),
        )
        .build_unchecked();
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join("pkg");
    Package::render(&runbook, None, &[])
        .unwrap()
        .write_to(&package, false)
        .unwrap();
    let out = Command::new("bash")
        .arg(package.join("scripts/deploy.sh"))
        .arg("--render-config")
        .arg(dir.path().join("rendered"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("RUNBOOK_WORK_DIR", dir.path().join("work"))
        .envs(values)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "deploy.sh --render-config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(dir.path().join("rendered/config/app.conf")).unwrap()
}

/// The one substitution rule: deploy.sh fills a config file byte for byte as the sandbox
/// does (`fill_template`): one pass, a value's own `${OTHER}` left as it is, an
/// undeclared or malformed placeholder kept, every byte of a value written as it is.
#[test]
fn deploy_sh_fills_config_files_exactly_as_the_sandbox_does() {
    let values = BTreeMap::from([
        ("A".to_owned(), "a${OTHER}z".to_owned()),
        (
            "B".to_owned(),
            "back\\slash \\n & && \\& $(id) `id` ${B} '\"\n2nd line\n".to_owned(),
        ),
        ("OTHER".to_owned(), "other * ? [x] %s #".to_owned()),
    ]);
    let same = |template: &str| {
        assert_eq!(
            String::from_utf8(filled_by_deploy_sh(template, &values)).unwrap(),
            runbook_core::template::fill_template(template, &values),
            "{template:?}"
        );
    };
    // A value is never scanned again: `a${OTHER}z` is written as it is.
    assert_eq!(
        runbook_core::template::fill_template("a=${A}", &values),
        "a=a${OTHER}z"
    );
    same("a=${A}\nboth=${A}${OTHER}\n");
    // Backslashes, `&`, newlines, quotes and shell syntax in a value; what the sandbox
    // keeps as written: no escape (`$${A}` is `$` and A's value), an undeclared or
    // lowercase name, spaces, an empty, nested or unterminated placeholder.
    same(
        "b=${B}\nescaped=$${A} \\${A}\nundeclared=${UNDECLARED} lower=${other} \
         spaced=${ A } empty=${}\nnested=${${A}} open=${A trailing=${",
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn deploy_sh_and_the_sandbox_fill_any_template_alike(
        template in proptest::collection::vec(proptest::sample::select(vec![
            "${A}", "${B}", "${OTHER}", "${UNDECLARED}", "${lower}", "${", "$", "{", "}",
            "$${A}", "\\", "&", "\n", "x", " ", "'", "é", "${A", "${}", "*",
        ]), 0..16).prop_map(|t| t.concat()),
        values in proptest::collection::vec(proptest::collection::vec(proptest::sample::select(vec![
            "${OTHER}", "${A}", "${B}", "\\", "&", "\n", "v", "$(id)", "'", "*", "%", "}", "${", "é",
        ]), 1..5).prop_map(|v| v.concat()), 3),
    ) {
        let values: BTreeMap<String, String> = ["A", "B", "OTHER"]
            .into_iter()
            .map(str::to_owned)
            .zip(values)
            .collect();
        prop_assert_eq!(
            String::from_utf8(filled_by_deploy_sh(&template, &values)).unwrap(),
            runbook_core::template::fill_template(&template, &values)
        );
    }
}

/// A runbook that adopts a lesson made of a hostile feedback file: the error a target
/// printed, the cause, the fix, the title and the origin reach README.md as inert text.
#[test]
fn lesson_text_is_inert_in_the_readme() {
    use runbook_core::{ApiVersion, Applies, KnownIssue, Lesson, LessonKind, LessonOrigin};
    let evil = |what: &str| {
        format!(
            "{what}\n# Heading {what}\n```evil\n<script>alert(1)</script>\r- injected {what}\n\
             [click](https://example.com) ![img](https://example.com/i.png) *em* __b__ \\<x>"
        )
    };
    let lesson = Lesson {
        api_version: ApiVersion::V1,
        kind: LessonKind::Lesson,
        id: "hostile".into(),
        title: evil("title"),
        origin: LessonOrigin {
            runbook: "inert".into(),
            step: "a".into(),
            error: evil("origin"),
            ..LessonOrigin::default()
        },
        applies: Applies::default(),
        preflight: Some(
            Check::command(format!("true {}", evil("command")))
                .named(evil("check"))
                .stdout_contains(evil("expect")),
        ),
        roles: Vec::new(),
        known_issue: Some(KnownIssue::new(evil("error"), evil("cause"), evil("fix"))),
    };
    let mut runbook = Runbook::builder("inert")
        .step(
            Step::new("a", "A")
                .run("true")
                .read_only()
                .verify(Check::command("true").stdout_equals("")),
        )
        .build_unchecked();
    let adopted = runbook.adopt_lesson(&lesson).unwrap();
    assert!(adopted.preflight && adopted.steps == ["a"], "{adopted:?}");
    let report = fixed_report(&runbook);
    let tested = Package::render(
        &runbook,
        Some(Evidence {
            report: &report,
            log: None,
        }),
        &[],
    )
    .unwrap();
    let untested = Package::render(&runbook, None, &[]).unwrap();
    for package in [tested, untested] {
        let readme = package.text("README.md").unwrap();
        for what in [
            "title", "origin", "command", "expect", "error", "cause", "fix",
        ] {
            assert!(
                readme.contains(&format!("Heading {what}")),
                "{what} is gone:\n{readme}"
            );
        }
        for line in readme.lines() {
            let start = line.trim_start();
            assert!(
                !start.starts_with("# Heading")
                    && !start.starts_with("```evil")
                    && !start.starts_with("- injected")
                    && !start.starts_with('<'),
                "a field started a block: {line:?}\n{readme}"
            );
        }
        // No HTML, link, image or emphasis: in what markdown interprets of each line of
        // the hostile text, every `<`, `[`, `*` and `_` of it is escaped or in code.
        for line in readme.lines().filter(|l| l.contains("Heading")) {
            let live = live_markdown(line);
            assert!(
                !live.contains(['<', '[', ']'])
                    && !live.contains("*em*")
                    && !live.contains("__b__"),
                "live markup in {line:?} (interpreted: {live:?})"
            );
        }
        assert!(!readme.contains("\r"), "a carriage return is a line break");
    }
}

/// What markdown interprets of one line: the content of its code spans (a run of n
/// backticks up to the next run of exactly n) and the characters it escapes with a
/// backslash are blanked out.
fn live_markdown(line: &str) -> String {
    let c: Vec<char> = line.chars().collect();
    let run = |i: usize| c[i..].iter().take_while(|&&x| x == '`').count();
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        if c[i] == '\\' && c.get(i + 1).is_some_and(char::is_ascii_punctuation) {
            out.push_str("  ");
            i += 2;
        } else if c[i] == '`' {
            let n = run(i);
            let mut j = i + n;
            while j < c.len() && !(c[j] == '`' && run(j) == n) {
                j += if c[j] == '`' { run(j) } else { 1 };
            }
            if j < c.len() {
                out.extend(std::iter::repeat_n(' ', j + n - i));
                i = j + n;
            } else {
                out.extend(std::iter::repeat_n('`', n));
                i += n;
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// Every string the runbook's author wrote (titles, commands, guidance, config files),
/// line by line: the author's words are theirs; the forbidden-word test judges the
/// renderer's own.
fn author_lines(runbook: &Runbook) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.extend(
                s.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned),
            ),
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            serde_json::Value::Object(o) => o.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&serde_json::to_value(runbook).unwrap(), &mut out);
    // Longest first, so that a line is removed before a shorter line inside it.
    out.sort_by_key(|l| std::cmp::Reverse(l.len()));
    out
}

/// A `platform: linux` runbook with a variable of every category (and a port, an
/// address, a URL, a CIDR and a path among their values), a config file that is not a
/// manifest, and PostgreSQL's tools.
fn linux_runbook_with_every_category() -> Runbook {
    // Naming each category here makes a new one fail to compile until it is covered.
    let value = |c: Category| match c {
        Category::Namespace => ("TENANT", "sandbox-test"),
        Category::Endpoint => ("PGPORT", "55432"),
        Category::Credential => ("API_KEY", "sandbox-key"),
        Category::Resources => ("SHARED_BUFFERS", "128MB"),
        Category::Replicas => ("WORKERS", "2"),
        Category::StorageClass => ("DISK", "ssd"),
        Category::Hostname => ("PUBLIC_HOST", "db.example.test"),
        Category::Tls => ("TLS_CERT", "certs/server.crt"),
        Category::NetworkPolicy => ("ALLOW_CIDR", "127.0.0.1/32"),
        Category::Other => ("PGDATA", "pgdata"),
    };
    let categories = [
        Category::Namespace,
        Category::Endpoint,
        Category::Credential,
        Category::Resources,
        Category::Replicas,
        Category::StorageClass,
        Category::Hostname,
        Category::Tls,
        Category::NetworkPolicy,
        Category::Other,
    ];
    let mut variables: Vec<Variable> = categories
        .iter()
        .map(|&c| {
            let (name, sandbox) = value(c);
            Variable::new(name, c).sandbox(sandbox)
        })
        .collect();
    variables.extend([
        Variable::new("PGHOST", Category::Endpoint).sandbox("127.0.0.1"),
        Variable::new("API_URL", Category::Endpoint).sandbox("http://127.0.0.1:8080/api"),
        Variable::new("CACHE_PORT", Category::Other).sandbox("6379"),
        Variable::new("DB_PASSWORD", Category::Credential)
            .generated()
            .secret(SecretSource::Vault, "secret/data/db#password"),
    ]);
    let mut runbook = runbook_core::from_yaml_str(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: replica-words, title: Allow the standby in }
target: { platform: linux }
prerequisites:
  - { tool: psql, version: ">=15, <16" }
configFiles:
  - path: config/pg_hba.conf
    content: "host replication all ${ALLOW_CIDR} trust\n"
steps:
  - id: allow
    title: Allow the standby
    run: cp config/pg_hba.conf "$PGDATA/pg_hba.conf"
    rollback: { run: rm -f "$PGDATA/pg_hba.conf" }
"#,
    )
    .unwrap();
    runbook.variables = variables;
    runbook
}

/// The words a package may use only when it holds (or is about) the thing they name,
/// judged on what the renderer wrote (the author's own lines removed) and on the files
/// the package holds. Returns every violation.
fn forbidden_words(runbook: &Runbook, package: &Package, file: &str) -> Vec<String> {
    let rendered = package.text(file).unwrap();
    let mut text = rendered.to_owned();
    for line in author_lines(runbook) {
        text = text.replace(&line, "\u{0}");
    }
    // The author said where a secret lives: a Kubernetes Secret is named as they named it.
    if runbook.variables.iter().any(|v| {
        v.secret
            .as_ref()
            .is_some_and(|s| s.source == SecretSource::ExistingSecret)
    }) {
        text = text.replace("Kubernetes Secret", "\u{0}");
    }
    let lower = text.to_lowercase();
    let config: Vec<&str> = package
        .paths()
        .filter(|p| p.starts_with("config/"))
        .collect();
    let holds = |needle: &str| {
        config
            .iter()
            .any(|p| package.text(p).unwrap_or_default().contains(needle))
    };
    let manifest = holds("apiVersion:") && holds("kind:");
    let network_policy = holds("kind: NetworkPolicy");
    let helm_values = runbook.steps.iter().any(|s| {
        s.run.contains("helm ") && config.iter().any(|p| s.run.contains(&format!("-f {p}")))
    });
    let kubernetes = runbook.target.platform.as_deref() == Some("kubernetes")
        || runbook.target.kubernetes_version.is_some();
    let pg_warning = package
        .text("scripts/deploy.sh")
        .unwrap()
        .contains("warn_environment");
    let word = |w: &str| {
        lower.match_indices(w).any(|(at, _)| {
            let before = lower[..at].chars().next_back();
            let after = lower[at + w.len()..].chars().next();
            !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphabetic)
        })
    };
    let pairs: &[(&str, bool, &str)] = &[
        ("manifest", manifest, "a manifest file"),
        ("manifests", manifest, "a manifest file"),
        ("networkpolicy", network_policy, "a NetworkPolicy manifest"),
        ("helm", helm_values, "a values file given to helm"),
        ("cluster", kubernetes, "a Kubernetes target"),
        ("cluster's", kubernetes, "a Kubernetes target"),
        ("namespace", kubernetes, "a Kubernetes target"),
        ("kubectl", kubernetes, "a Kubernetes target"),
        ("kubernetes", kubernetes, "a Kubernetes target"),
        ("pod", kubernetes, "a Kubernetes target"),
        ("pods", kubernetes, "a Kubernetes target"),
        ("storageclass", kubernetes, "a Kubernetes target"),
        ("ingress", kubernetes, "a Kubernetes target"),
        (
            "`pg*`",
            pg_warning,
            "a script that warns about PG* variables",
        ),
        ("config/", !config.is_empty(), "a config file"),
    ];
    let mut out: Vec<String> = pairs
        .iter()
        .filter(|(w, allowed, _)| !allowed && word(w))
        .map(|(w, _, needs)| format!("{file}: says `{w}` without {needs}"))
        .collect();
    // A port is called a port, never an endpoint to update.
    for v in &runbook.variables {
        let Some(sandbox) = v.sandbox.as_deref().filter(|_| !v.hides_value()) else {
            continue;
        };
        if v.value_kind(sandbox) != runbook_core::ValueKind::Port {
            continue;
        }
        let line = rendered
            .lines()
            .find(|l| l.contains(&format!("(`{}`):", v.name)))
            .unwrap_or_else(|| panic!("{file}: no checklist line for {}", v.name));
        let words = line.split(" Production:").next().unwrap_or_default();
        if !words.contains("**Port**") || words.to_lowercase().contains("endpoint") {
            out.push(format!(
                "{file}: port {} is not called a port: {line}",
                v.name
            ));
        }
    }
    out
}

/// The words of the checklist and the README follow the platform, the variables'
/// categories and values, and what the package holds: for every example and for a linux
/// runbook with every category, tested and untested. The README names where the
/// sandbox found the tools, never the author's `PATH`.
#[test]
fn no_word_for_a_thing_the_package_does_not_hold() {
    let mut runbooks = examples();
    let linux = linux_runbook_with_every_category();
    runbooks.push(("every-category".into(), linux.clone()));
    // The same variables for a cluster with no NetworkPolicy manifest: still none "included".
    let mut k8s = linux.clone();
    k8s.target.platform = Some("kubernetes".into());
    runbooks.push(("every-category-kubernetes".into(), k8s));
    let author_path = "/root/.cargo/bin:/root/.cargo/bin:/home/author/.pyenv/shims:/usr/bin:/bin";
    let mut violations = Vec::new();
    for (name, runbook) in &runbooks {
        let mut report = fixed_report(runbook);
        report.sandbox.path = author_path.into();
        for t in &mut report.preflight {
            t.location = Some(format!("/usr/lib/postgresql/15/bin/{}", t.tool));
        }
        let tested = Package::render(
            runbook,
            Some(Evidence {
                report: &report,
                log: Some("log\n"),
            }),
            &[],
        )
        .unwrap();
        let untested = Package::render(runbook, None, &[]).unwrap();
        for (package, how) in [(&tested, "tested"), (&untested, "untested")] {
            for file in ["README.md", "adaptation-checklist.md"] {
                violations.extend(
                    forbidden_words(runbook, package, file)
                        .into_iter()
                        .map(|v| format!("{name} ({how}) {v}")),
                );
            }
        }
        let readme = tested.text("README.md").unwrap();
        if readme.contains(".cargo") || readme.contains(author_path) {
            violations.push(format!("{name}: the README quotes the author's PATH"));
        }
        if !runbook.prerequisites.is_empty()
            && !readme.contains("found the runbook's tools in `/usr/lib/postgresql/15/bin`")
        {
            violations.push(format!(
                "{name}: the README does not say where the tools were found"
            ));
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));

    // What the linux runbook's checklist says instead.
    let package = Package::render(&linux, None, &[]).unwrap();
    let checklist = package.text("adaptation-checklist.md").unwrap();
    for want in [
        "**Network access** (`ALLOW_CIDR`): change from `127.0.0.1/32` to the address ranges allowed to connect in production.",
        "**Port** (`PGPORT`): change from `55432` to the port it uses in production.",
        "**Port** (`CACHE_PORT`): change from `6379` to the port it uses in production.",
        "**Endpoint** (`PGHOST`): update from `127.0.0.1` to your production address.",
        "**Endpoint** (`API_URL`): update from `http://127.0.0.1:8080/api` to your production URL.",
        "**Scope** (`TENANT`)",
        "**Storage** (`DISK`)",
    ] {
        assert!(checklist.contains(want), "{want}\n{checklist}");
    }
    // The Kubernetes example includes its NetworkPolicy manifest, and says which.
    let (_, kubernetes) = examples()
        .into_iter()
        .find(|(n, _)| n == "kubernetes")
        .unwrap();
    let package = Package::render(&kubernetes, None, &[]).unwrap();
    assert!(
        package
            .text("adaptation-checklist.md")
            .unwrap()
            .contains("verify the included NetworkPolicy manifests (`config/network-policy.yaml`)"),
        "{}",
        package.text("adaptation-checklist.md").unwrap()
    );
}
