//! Every lint rule fires on its `triggers.yaml` fixture and stays quiet on its `clean.yaml`.

use std::path::Path;

use runbook_core::{Rule, SourceMap, load};

fn fixture(rule: Rule, name: &str) -> (runbook_core::Runbook, String) {
    load(dir(rule).join(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn dir(rule: Rule) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lint")
        .join(rule.code())
}

/// The lint findings, and those of the fixture's lessons library (`lessons/`) if it has one.
fn findings(rule: Rule, runbook: &runbook_core::Runbook) -> Vec<runbook_core::Diagnostic> {
    let lessons = runbook_core::load_lessons(dir(rule).join("lessons")).unwrap();
    let mut out = runbook.lint();
    out.extend(runbook_core::unaddressed_lessons(runbook, &lessons));
    out
}

#[test]
fn every_rule_triggers_on_its_fixture_with_a_locatable_path() {
    for &rule in Rule::ALL.iter().filter(|r| **r != Rule::Custom) {
        let (runbook, text) = fixture(rule, "triggers.yaml");
        let findings = findings(rule, &runbook);
        let hit = findings
            .iter()
            .find(|d| d.rule == rule)
            .unwrap_or_else(|| panic!("{rule} did not fire on its fixture; got {findings:#?}"));
        assert_eq!(hit.severity, rule.severity());
        assert!(!hit.message.is_empty() && !hit.help.is_empty(), "{hit:?}");
        let (line, column) = SourceMap::new(&text)
            .locate(&hit.path)
            .unwrap_or_else(|| panic!("{rule}: path {} not found in the file", hit.path));
        assert!(line > 1 && column >= 1, "{rule}: {line}:{column}");
    }
}

#[test]
fn no_rule_fires_on_its_clean_fixture() {
    for &rule in Rule::ALL.iter().filter(|r| **r != Rule::Custom) {
        let (runbook, _) = fixture(rule, "clean.yaml");
        let findings = findings(rule, &runbook);
        assert!(
            findings.iter().all(|d| d.rule != rule),
            "{rule} fired on its clean fixture: {findings:#?}"
        );
    }
}

#[test]
fn findings_point_at_the_offending_line() {
    let (runbook, text) = fixture(Rule::HelmWithoutWait, "triggers.yaml");
    let hit = runbook
        .lint()
        .into_iter()
        .find(|d| d.rule == Rule::HelmWithoutWait)
        .unwrap();
    assert_eq!(hit.path, "steps[0].run");
    let (line, _) = SourceMap::new(&text).locate(&hit.path).unwrap();
    let source_line = text.lines().nth(line as usize - 1).unwrap();
    assert!(source_line.contains("helm install"), "{source_line}");
}

#[test]
fn removed_api_names_the_version_and_the_replacement() {
    let (runbook, _) = fixture(Rule::RemovedApi, "triggers.yaml");
    let hit = runbook
        .lint()
        .into_iter()
        .find(|d| d.rule == Rule::RemovedApi)
        .unwrap();
    assert!(
        hit.message.contains("batch/v1beta1") && hit.message.contains("1.25"),
        "{}",
        hit.message
    );
    assert_eq!(hit.help, "use batch/v1");
}

#[test]
fn the_removal_table_covers_the_issue_list() {
    use runbook_core::lint::removed_api;
    assert_eq!(
        removed_api("policy/v1beta1", "PodSecurityPolicy", 25)
            .unwrap()
            .removed_in,
        25
    );
    assert!(removed_api("policy/v1beta1", "PodSecurityPolicy", 24).is_none());
    assert_eq!(
        removed_api("extensions/v1beta1", "Ingress", 29)
            .unwrap()
            .removed_in,
        22
    );
    assert_eq!(
        removed_api("autoscaling/v2beta2", "HorizontalPodAutoscaler", 26)
            .unwrap()
            .removed_in,
        26
    );
    assert_eq!(
        removed_api("flowcontrol.apiserver.k8s.io/v1beta2", "FlowSchema", 29)
            .unwrap()
            .removed_in,
        29
    );
    assert!(removed_api("apps/v1", "Deployment", 40).is_none());
}

#[test]
fn a_runbook_name_too_long_for_a_namespace_is_refused() {
    let name = "a".repeat(41);
    let rb = runbook_core::Runbook::builder(name).build_unchecked();
    assert!(
        rb.lint()
            .iter()
            .any(|d| d.rule == Rule::InvalidName && d.message.contains("at most 40")),
        "{:?}",
        rb.lint()
    );
    let rb = runbook_core::Runbook::builder("a".repeat(40)).build_unchecked();
    assert!(!rb.lint().iter().any(|d| d.rule == Rule::InvalidName));
}

/// A runbook with one variable named `name`, used by its one step.
fn with_variable(name: &str) -> Result<runbook_core::Built, runbook_core::BuildError> {
    runbook_core::Runbook::builder("reserved")
        .variable(
            runbook_core::Variable::new(name, runbook_core::Category::Other)
                .sandbox("x")
                .production("y"),
        )
        .step(
            runbook_core::Step::new("s", "S")
                .run(format!("echo \"${name}\""))
                .read_only()
                .verify(runbook_core::Check::command("echo ok").stdout_equals("ok")),
        )
        .build()
}

/// Names that would change what runs rather than what a step does are refused, each
/// with the reason; ordinary names that merely contain them are not.
#[test]
fn variables_that_steer_the_loader_the_shell_or_the_sandbox_are_reserved() {
    let reserved = [
        ("LD_PRELOAD", "dynamic loader"),
        ("LD_LIBRARY_PATH", "dynamic loader"),
        ("BASH_ENV", "shell reads it"),
        ("ENV", "shell reads it"),
        ("POSIXLY_CORRECT", "shell reads it"),
        ("SHELLOPTS", "shell reads it"),
        ("BASHOPTS", "shell reads it"),
        ("IFS", "shell reads it"),
        ("UID", "bash sets it"),
        ("PATH", "sandbox and the package's scripts"),
        ("HOME", "sandbox and the package's scripts"),
        ("RUNBOOK_SANDBOX_ID", "sandbox and the package's scripts"),
    ];
    for (name, why) in reserved {
        let text = with_variable(name).expect_err(name).to_string();
        assert!(
            text.contains("reserved-variable") && text.contains(why),
            "{name}: {text}"
        );
    }
    for fine in ["APP_PATH", "OLD_HOME", "ENVIRONMENT", "LDAP_URL", "MY_IFS"] {
        let built = with_variable(fine).unwrap_or_else(|e| panic!("{fine}: {e}"));
        assert!(
            built
                .warnings
                .iter()
                .all(|w| w.rule != Rule::ReservedVariable)
        );
    }
}
