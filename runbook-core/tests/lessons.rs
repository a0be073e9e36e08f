//! Feedback files and lessons: YAML and JSON Schema round trips, located errors, matching,
//! adoption.

use std::path::{Path, PathBuf};

use runbook_core::{
    Check, Feedback, Lesson, LessonDraft, Runbook, feedback_from_yaml_str, feedback_json_schema,
    lesson_from_yaml_str, lesson_json_schema, load_lessons, to_yaml,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lint/unaddressed-lesson")
}

/// A feedback file as `deploy.sh` writes it (quoted scalars, a comment, lists of lines).
const FEEDBACK: &str = r#"# What failed on this target, for the runbook's maintainers. Secrets are masked.
apiVersion: runbook/v1
kind: Feedback
package: 787826cb055007d4ba42d57a78f2891f7669c02a0405e6d2082453e4cb25b2f9
runbook:
  name: "postgres"
  version: "1.0.0"
  platform: "linux"
phase: deploy
step: "start-server"
command: "pg_ctl --pgdata=\"$PGDATA\" --log=\"$PGDATA/server.log\" --wait --timeout=60 start"
exitCode: 1
stdout:
  - "waiting for server to start.... stopped waiting"
stderr:
  - "pg_ctl: could not start server"
  - "Examine the log output."
target:
  os: "Debian GNU/Linux 12 (bookworm)"
  kernel: "6.1.0"
  architecture: "x86_64"
  user: "nobody"
  tools:
    - tool: "pg_ctl"
      required: ">=15, <16"
      found: "15.20"
    - tool: "psql"
      required: ">=15, <16"
      found: "15.20"
time: 2026-11-27T13:41:08Z
"#;

fn validate(schema: &str, value: &serde_json::Value) -> Vec<String> {
    let schema: serde_json::Value = serde_json::from_str(schema).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    validator
        .iter_errors(value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

#[test]
fn feedback_round_trips_through_yaml_and_the_schema() {
    let feedback = feedback_from_yaml_str(FEEDBACK).unwrap();
    assert_eq!(feedback.error_excerpt(), "pg_ctl: could not start server");
    let again: Feedback = feedback_from_yaml_str(&to_yaml(&feedback)).unwrap();
    assert_eq!(again, feedback);
    let json = serde_json::to_value(&feedback).unwrap();
    assert_eq!(
        validate(&feedback_json_schema(), &json),
        Vec::<String>::new()
    );
    // The schema refuses what the parser refuses.
    let mut bad = json.clone();
    bad["phase"] = "deplo".into();
    assert!(!validate(&feedback_json_schema(), &bad).is_empty());
}

#[test]
fn lessons_round_trip_through_yaml_and_the_schema() {
    let lessons = load_lessons(fixtures().join("lessons")).unwrap();
    assert_eq!(lessons.len(), 2);
    for lesson in &lessons {
        let text = to_yaml(lesson);
        assert_eq!(&lesson_from_yaml_str(&text).unwrap(), lesson, "{text}");
        let json = serde_json::to_value(lesson).unwrap();
        assert_eq!(validate(&lesson_json_schema(), &json), Vec::<String>::new());
    }
    let made = Lesson::from_feedback(
        &feedback_from_yaml_str(FEEDBACK).unwrap(),
        LessonDraft {
            check: Some(Check::command("true").stdout_equals("")),
            cause: Some("the port is taken".into()),
            fix: Some("free it".into()),
            ..LessonDraft::default()
        },
    )
    .unwrap();
    assert_eq!(lesson_from_yaml_str(&to_yaml(&made)).unwrap(), made);
    assert!(
        made.id.starts_with("postgres-step-start-server-failed"),
        "{}",
        made.id
    );
    // Only the prerequisite among the command's words, with the tested requirement.
    assert_eq!(made.applies.tools.len(), 1);
    assert_eq!(made.applies.tools[0].version.as_deref(), Some(">=15, <16"));
}

#[test]
fn damaged_files_are_errors_with_line_and_column() {
    let damaged = FEEDBACK.replace("exitCode: 1", "exitCode: [1");
    let e = feedback_from_yaml_str(&damaged).unwrap_err();
    assert!(e.line.is_some() && e.column.is_some(), "{e}");
    let e =
        feedback_from_yaml_str(&FEEDBACK.replace("phase: deploy", "phase: deplyo")).unwrap_err();
    assert_eq!(e.line, Some(9), "{e}");
    assert!(
        e.message.contains("deplyo") || e.message.contains("variant"),
        "{e}"
    );
    let e = feedback_from_yaml_str(&FEEDBACK.replace("step:", "stepp:")).unwrap_err();
    assert_eq!(e.line, Some(10), "{e}");

    // A lesson that parses but would change nothing, or cannot match, is refused.
    let lesson =
        "apiVersion: runbook/v1\nkind: Lesson\nid: x\ntitle: X\norigin: {runbook: a, step: b}\n";
    assert!(
        lesson_from_yaml_str(lesson)
            .unwrap_err()
            .message
            .contains("neither")
    );
    let bad_regex = format!("{lesson}applies: {{commands: '('}}\npreflight: {{run: 'true'}}\n");
    assert!(
        lesson_from_yaml_str(&bad_regex)
            .unwrap_err()
            .message
            .contains("regular expression")
    );

    // In a library, the error names the file.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.yaml"),
        "apiVersion: runbook/v1\nkind: Lesson\nid: [\n",
    )
    .unwrap();
    let e = load_lessons(dir.path()).unwrap_err();
    assert!(e.to_string().contains("broken.yaml:"), "{e}");
    std::fs::remove_file(dir.path().join("broken.yaml")).unwrap();
    let one = std::fs::read_to_string(fixtures().join("lessons/pg-port-taken.yaml")).unwrap();
    std::fs::write(dir.path().join("a.yaml"), &one).unwrap();
    std::fs::write(dir.path().join("b.yaml"), &one).unwrap();
    assert!(
        load_lessons(dir.path())
            .unwrap_err()
            .message
            .contains("second lesson")
    );
    assert!(load_lessons(dir.path().join("missing")).unwrap().is_empty());
}

fn fixture(name: &str) -> Runbook {
    runbook_core::load(fixtures().join(name)).unwrap().0
}

#[test]
fn lessons_match_by_tool_version_platform_and_command() {
    let lessons = load_lessons(fixtures().join("lessons")).unwrap();
    let pg = lessons.iter().find(|l| l.id == "pg-port-taken").unwrap();
    let helm = lessons.iter().find(|l| l.id == "helm-repo-stale").unwrap();
    let runbook = fixture("triggers.yaml");
    assert!(pg.applies_to(&runbook));
    assert!(!helm.applies_to(&runbook), "another tool");

    // Another major version of the tool: the lesson does not apply.
    let mut pg16 = runbook.clone();
    pg16.prerequisites[0].version = ">=16".into();
    assert!(!pg.applies_to(&pg16));
    // Another platform: neither.
    let mut kube = runbook.clone();
    kube.target.platform = Some("kubernetes".into());
    assert!(!pg.applies_to(&kube));
    // A command pattern narrows it.
    let mut narrowed = pg.clone();
    narrowed.applies.commands = Some("--mode=immediate".into());
    assert!(!narrowed.applies_to(&runbook));
    narrowed.applies.commands = Some(r"pg_ctl .* start".into());
    assert!(narrowed.applies_to(&runbook));
}

#[test]
fn adopting_a_lesson_is_idempotent_and_bumps_only_when_asked() {
    let lessons = load_lessons(fixtures().join("lessons")).unwrap();
    let pg = lessons.iter().find(|l| l.id == "pg-port-taken").unwrap();
    let mut runbook = fixture("triggers.yaml");
    assert!(!pg.is_carried_by(&runbook));
    let done = runbook.adopt_lesson(pg);
    assert!(done.preflight);
    assert_eq!(done.steps, ["start"]);
    assert!(pg.is_carried_by(&runbook));
    assert!(
        runbook.adopt_lesson(pg).is_empty(),
        "a second adoption changes nothing"
    );
    assert_eq!(runbook.preflight.len(), 1);
    assert!(runbook_core::unaddressed_lessons(&runbook, &lessons).is_empty());
    assert!(
        runbook.lint().iter().all(|d| !d.is_error()),
        "{:#?}",
        runbook.lint()
    );

    runbook.metadata.version = "1.4.2".into();
    runbook.bump_minor_version().unwrap();
    assert_eq!(runbook.metadata.version, "1.5.0");
    runbook.metadata.version = "next".into();
    assert!(runbook.bump_minor_version().is_err());
}

#[test]
fn a_lesson_check_with_an_undeclared_variable_is_a_lint_error_at_its_path() {
    let lessons = load_lessons(fixtures().join("lessons")).unwrap();
    let pg = lessons.iter().find(|l| l.id == "pg-port-taken").unwrap();
    let mut runbook = fixture("triggers.yaml");
    runbook.variables.retain(|v| v.name != "PGHOST");
    runbook.steps[0].run = runbook.steps[0].run.replace("-h $PGHOST", "");
    runbook.steps[0].verify[0] =
        Check::command("pg_isready -p \"$PGPORT\"").stdout_contains("accepting");
    runbook.adopt_lesson(pg);
    let errors: Vec<_> = runbook
        .lint()
        .into_iter()
        .filter(|d| d.is_error())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].path, "preflight[0].check.run");
    assert_eq!(errors[0].code(), "undeclared-variable");
}

#[test]
fn the_tools_a_command_invokes() {
    let cases: &[(&str, &[&str])] = &[
        ("pg_ctl start", &["pg_ctl"]),
        (
            "sudo -u postgres /usr/lib/postgresql/15/bin/initdb -D x",
            &["initdb"],
        ),
        ("timeout 30s helm upgrade --install x", &["helm"]),
        ("env A=1 B=2 kubectl apply -f -", &["kubectl"]),
        ("if ! redis-cli ping; then echo no; fi", &["redis-cli"]),
        (
            "echo \"$(psql -tAc 'select 1')\" | grep -q 1",
            &["psql", "grep"],
        ),
        ("cd dir && X=1 ./run.sh", &["run.sh"]),
    ];
    for (command, want) in cases {
        assert_eq!(runbook_core::invoked_tools(command), *want, "{command}");
    }
}
