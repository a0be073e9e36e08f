//! The probe builders make the same checks as the struct forms, read and write the same
//! YAML, and refuse a modifier that does not belong to their probe. The public walk over
//! a runbook's texts, the shell-provided variables and the positive-check predicate are
//! the ones the lint rules use.

use std::collections::BTreeMap;
use std::time::Duration;

use runbook_core::lint::{SHELL_ENVIRONMENT, TextKind, is_shell_environment};
use runbook_core::template::{shell_references, template_references};
use runbook_core::{
    Category, Check, FileProbe, HttpProbe, HumanDuration, KubeCheck, KubeObjectRef, Probe,
    ProcessProbe, Rollback, Rule, Runbook, Step, TcpProbe, Variable,
};

#[test]
fn builders_make_the_struct_forms() {
    assert_eq!(
        Check::file("app/app.conf")
            .contains("port=${APP_PORT}")
            .matches(r"^port=\d+$")
            .mode("0640")
            .probe,
        Probe::File(FileProbe {
            path: "app/app.conf".into(),
            exists: true,
            contains: Some("port=${APP_PORT}".into()),
            matches: Some(r"^port=\d+$".into()),
            mode: Some("0640".into()),
        })
    );
    assert_eq!(
        Check::file("app/app.pid").absent().probe,
        Probe::File(FileProbe {
            exists: false,
            ..FileProbe::exists("app/app.pid")
        })
    );
    assert_eq!(
        Check::tcp("127.0.0.1", 5432u16).probe,
        Probe::Tcp(TcpProbe {
            host: "127.0.0.1".into(),
            port: "5432".into()
        })
    );
    assert_eq!(
        Check::http("http://127.0.0.1:${PORT}/health")
            .status(204)
            .body_contains("ok")
            .request_timeout(Duration::from_secs(3))
            .probe,
        Probe::Http(HttpProbe {
            url: "http://127.0.0.1:${PORT}/health".into(),
            status: 204,
            body_contains: Some("ok".into()),
            timeout: Some(HumanDuration(Duration::from_secs(3))),
        })
    );
    assert_eq!(
        Check::process("postgres").probe,
        Probe::Process(ProcessProbe {
            name: "postgres".into()
        })
    );
    assert_eq!(
        KubeCheck::absent("v1", "Secret", "db"),
        KubeCheck::Absent(KubeObjectRef {
            api_version: "v1".into(),
            kind: "Secret".into(),
            name: "db".into()
        })
    );
    assert_eq!(
        Check::new(Probe::Command("true".into())),
        Check::command("true")
    );
}

#[test]
fn built_probe_checks_read_and_write_the_file_form() {
    let built = Runbook::builder("probes")
        .variable(
            Variable::new("PORT", Category::Endpoint)
                .sandbox("8080")
                .production("yours"),
        )
        .step(
            Step::new("serve", "Serve")
                .run("start-app --port \"$PORT\"")
                .verify(Check::tcp("127.0.0.1", "${PORT}").within(Duration::from_secs(10)))
                .verify(Check::http("http://127.0.0.1:${PORT}/").body_contains("ok"))
                .verify(Check::process("start-app"))
                .rollback_with(Rollback::new("stop-app").verify(Check::file("app.pid").absent())),
        )
        .build()
        .unwrap();
    assert!(built.warnings.is_empty(), "{:?}", built.warnings);
    let yaml = runbook_core::to_yaml_string(&built.runbook);
    assert!(yaml.contains("tcp:"), "{yaml}");
    assert!(yaml.contains("exists: false"), "{yaml}");
    assert_eq!(runbook_core::from_yaml_str(&yaml).unwrap(), built.runbook);
}

#[test]
#[should_panic(
    expected = "Check::absent applies to a file check (`Check::file`), not to a command check"
)]
fn a_file_modifier_on_a_command_check_is_a_mistake_in_the_code() {
    let _ = Check::command("test -e app.pid").absent();
}

#[test]
#[should_panic(
    expected = "Check::status applies to an HTTP check (`Check::http`), not to a TCP check"
)]
fn an_http_modifier_on_a_tcp_check_is_a_mistake_in_the_code() {
    let _ = Check::tcp("127.0.0.1", 80).status(204);
}

#[test]
fn the_expectation_of_a_filled_check_names_the_values() {
    let values: BTreeMap<String, String> = [
        ("HOST".to_owned(), "10.0.0.7".to_owned()),
        ("PORT".to_owned(), "9191".to_owned()),
    ]
    .into();
    let check = Check::http("http://${HOST}:${PORT}/health").body_contains("port ${PORT}");
    assert_eq!(
        check.filled(&values).expectation(),
        "http://10.0.0.7:9191/health answers 200 with a body containing \"port 9191\""
    );
    let command = Check::command("cat port").stdout_equals("${PORT}");
    assert_eq!(
        command.filled(&values).expectation(),
        "exit code 0, stdout equals \"9191\""
    );
    // The check itself keeps its placeholders: the package fills them on the target.
    assert!(check.expectation().contains("${HOST}"));
}

/// A test suite's own "every variable is declared", built on the public walk and the
/// shell-provided list, agrees with the lint rule.
#[test]
fn a_test_suites_variable_rule_agrees_with_the_lint() {
    let runbook = |run: &str, probe: Check| {
        let step = Step::new("write", "Write")
            .run(run)
            .verify(probe)
            .rollback("rm -f out.txt");
        Runbook::builder("walk")
            .variable(
                Variable::new("OUT", Category::Other)
                    .sandbox("out")
                    .production("yours"),
            )
            .step(step)
            .build_unchecked()
    };
    let undeclared = |r: &Runbook| -> Vec<String> {
        let mut names = Vec::new();
        for t in r.texts() {
            let refs = match t.kind {
                TextKind::Command => shell_references(t.text),
                TextKind::Template => template_references(t.text),
                _ => continue,
            };
            names.extend(
                refs.into_iter()
                    .map(|v| v.name)
                    .filter(|n| !is_shell_environment(n) && r.variable(n).is_none())
                    .map(|n| format!("{}: {n}", t.path)),
            );
        }
        names
    };
    let lint_undeclared = |r: &Runbook| -> Vec<String> {
        runbook_core::lint::lint(r)
            .into_iter()
            .filter(|d| d.rule == Rule::UndeclaredVariable)
            .map(|d| d.path)
            .collect()
    };

    let fine = runbook(
        "cd \"$PWD\" && echo \"$HOME\" > \"$OUT.txt\"",
        Check::file("${OUT}.txt"),
    );
    assert!(undeclared(&fine).is_empty(), "{:?}", undeclared(&fine));
    assert!(lint_undeclared(&fine).is_empty());

    let wrong = runbook("echo \"$MISSING\" > out.txt", Check::file("${NOPE}.txt"));
    assert_eq!(
        undeclared(&wrong),
        [
            "steps[0].run: MISSING",
            "steps[0].verify[0].file.path: NOPE"
        ]
    );
    assert_eq!(
        lint_undeclared(&wrong).len(),
        2,
        "{:?}",
        lint_undeclared(&wrong)
    );
    assert!(SHELL_ENVIRONMENT.contains(&"PWD") && SHELL_ENVIRONMENT.contains(&"HOME"));
}

#[test]
fn texts_come_with_their_path_and_kind() {
    let runbook = Runbook::builder("kinds")
        .title("Kinds")
        .step(
            Step::new("one", "First step")
                .run("true")
                .verify(Check::command("echo hi").stdout_contains("hi"))
                .verify(Check::tcp("127.0.0.1", 80))
                .rollback("true"),
        )
        .build_unchecked();
    let texts: Vec<(String, TextKind, &str)> = runbook
        .texts()
        .into_iter()
        .map(|t| (t.path, t.kind, t.text))
        .collect();
    for want in [
        ("metadata.title".to_owned(), TextKind::Other, "Kinds"),
        ("steps[0].title".to_owned(), TextKind::Other, "First step"),
        ("steps[0].run".to_owned(), TextKind::Command, "true"),
        (
            "steps[0].verify[0].run".to_owned(),
            TextKind::Command,
            "echo hi",
        ),
        (
            "steps[0].verify[0].expect.stdout".to_owned(),
            TextKind::Template,
            "hi",
        ),
        (
            "steps[0].verify[1].tcp.port".to_owned(),
            TextKind::Template,
            "80",
        ),
        (
            "steps[0].rollback.run".to_owned(),
            TextKind::Command,
            "true",
        ),
    ] {
        assert!(texts.contains(&want), "{want:?} not in {texts:#?}");
    }
}

/// The lint's `exit-code-only` rule flags exactly the checks that repeat their step's
/// command and are not positive.
#[test]
fn the_positive_check_predicate_is_the_lints() {
    for (check, positive) in [
        (Check::command("make install"), false),
        (Check::command("make install").exit_code(0), false),
        (Check::command("make install").exit_code(2), true),
        (Check::command("make install").stdout_contains("done"), true),
        (Check::command("make install").stderr_equals(""), true),
    ] {
        assert_eq!(check.is_positive(), positive, "{check:?}");
        let runbook = Runbook::builder("positive")
            .step(
                Step::new("install", "Install")
                    .run("make install")
                    .verify(check)
                    .rollback("make uninstall"),
            )
            .build_unchecked();
        let flagged = runbook_core::lint::lint(&runbook)
            .iter()
            .any(|d| d.rule == Rule::ExitCodeOnly);
        assert_eq!(flagged, !positive);
    }
    for typed in [
        Check::file("x"),
        Check::tcp("h", 1),
        Check::http("http://h/"),
        Check::process("p"),
        Check::kube(KubeCheck::pods_ready("app=x", 1)),
    ] {
        assert!(typed.is_positive());
    }
}
