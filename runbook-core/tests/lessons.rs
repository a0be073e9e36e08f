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
    let done = runbook.adopt_lesson(pg).unwrap();
    assert!(done.preflight);
    assert_eq!(done.steps, ["start"]);
    assert!(pg.is_carried_by(&runbook));
    assert!(
        runbook.adopt_lesson(pg).unwrap().is_empty(),
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
fn a_lesson_without_roles_whose_variable_is_undeclared_is_not_adopted() {
    let lessons = load_lessons(fixtures().join("lessons")).unwrap();
    let pg = lessons.iter().find(|l| l.id == "pg-port-taken").unwrap();
    assert!(pg.roles.is_empty(), "a lesson written before roles");
    let mut runbook = fixture("triggers.yaml");
    runbook.variables.retain(|v| v.name != "PGHOST");
    runbook.steps[0].run = runbook.steps[0].run.replace("-h $PGHOST", "");
    runbook.steps[0].verify[0] =
        Check::command("pg_isready -p \"$PGPORT\"").stdout_contains("accepting");
    let before = runbook.clone();
    let misfit = runbook.adopt_lesson(pg).unwrap_err();
    assert_eq!(misfit.lesson, "pg-port-taken");
    assert_eq!(misfit.problems.len(), 1, "{misfit}");
    assert!(
        misfit.problems[0].contains("`$PGHOST`") && misfit.problems[0].contains("no role"),
        "{misfit}"
    );
    assert_eq!(runbook, before, "nothing carried");
    // validate says so, as the same warning.
    let warnings = runbook_core::unaddressed_lessons(&runbook, &lessons);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].message.contains("cannot be carried")
            && warnings[0].message.contains("skips it"),
        "{}",
        warnings[0]
    );
    // Carried by hand regardless, the check is an undeclared-variable error at its path.
    runbook.preflight.extend(pg.preflight_item());
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
        // Continued lines and here-documents are not commands.
        (
            "PGPASSWORD=\"$P\" psql --host=h \\\n  -v ON_ERROR_STOP=1 <<'SQL'\nSELECT 1;\nDROP TABLE x;\nSQL\ngrep -q x f",
            &["psql", "grep"],
        ),
    ];
    for (command, want) in cases {
        assert_eq!(runbook_core::invoked_tools(command), *want, "{command}");
    }
}

/// The fixtures the CLI's feedback tests share (runbooks, a feedback file, a lesson in the
/// format written before roles).
fn shared(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/feedback")
        .join(name)
}

fn shared_runbook(name: &str) -> Runbook {
    runbook_core::load(shared(name)).unwrap().0
}

/// The check the operator wrote, with the example's variable names.
const PORT_FREE: &str = r#"! (exec 3<>"/dev/tcp/$PGHOST/$PGPORT") 2>/dev/null"#;

/// The lesson of FEEDBACK, learnt from examples/postgres with its roles.
fn port_lesson() -> Lesson {
    let origin = runbook_core::load(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/postgres/runbook.yaml"),
    )
    .unwrap()
    .0;
    Lesson::from_feedback(
        &feedback_from_yaml_str(FEEDBACK).unwrap(),
        LessonDraft {
            id: Some("pg-port-taken".into()),
            check: Some(Check::command(PORT_FREE)),
            cause: Some("Another process listens on the port".into()),
            fix: Some("Choose a free port for PGPORT, or stop the other process".into()),
            origin: Some(origin),
            ..LessonDraft::default()
        },
    )
    .unwrap()
}

#[test]
fn error_text_is_normalised() {
    use runbook_core::feedback::normalise_error;
    let cases = [
        (
            "2026-11-29 17:21:38.197 UTC [6638] FATAL:  could not bind IPv4 address \"127.0.0.1\": Address already in use",
            "FATAL: could not bind IPv4 address \"127.0.0.1\": Address already in use",
        ),
        (
            "2026-11-29T17:21:38Z ERROR listener 0x7f3a9c2b10 on port 5432 failed",
            "ERROR listener on port 5432 failed",
        ),
        (
            "17:21:38 LOG: request 3f2c9a1e-6b0d-4c1e-9a7f-2b8d4e6f0a1c took 30s",
            "LOG: request took 30s",
        ),
        (
            "Error response from daemon: container 9f8e7d6c5b4a is not running (pid 4242)",
            "Error response from daemon: container is not running",
        ),
        // Nothing to remove: a port, an exit code and a version stay.
        (
            "pg_ctl: could not start server (exit 1) on 5432, PostgreSQL 15.10",
            "pg_ctl: could not start server (exit 1) on 5432, PostgreSQL 15.10",
        ),
    ];
    for (raw, want) in cases {
        assert_eq!(normalise_error(raw), want, "{raw}");
    }

    // The feedback's own error line is normalised; --error replaces it, normalised too.
    let feedback = runbook_core::load_feedback(shared("start-standby.yaml")).unwrap();
    let draft = || LessonDraft {
        check: Some(Check::command("true")),
        ..LessonDraft::default()
    };
    let lesson = Lesson::from_feedback(&feedback, draft()).unwrap();
    assert_eq!(
        lesson.origin.error,
        "FATAL: could not bind IPv4 address \"127.0.0.1\": Address already in use"
    );
    let given = Lesson::from_feedback(
        &feedback,
        LessonDraft {
            error: Some(
                "2026-11-30 08:00:01 UTC [77] FATAL:  lock file \"postmaster.pid\" already exists"
                    .into(),
            ),
            cause: Some("A server already runs on this data directory".into()),
            fix: Some("Stop it first".into()),
            ..draft()
        },
    )
    .unwrap();
    assert_eq!(
        given.origin.error,
        "FATAL: lock file \"postmaster.pid\" already exists"
    );
    assert_eq!(given.known_issue.unwrap().error, given.origin.error);
    assert!(!given.title.contains("2026"), "{}", given.title);
}

#[test]
fn a_lesson_states_the_roles_of_its_check_and_fits_a_runbook_with_other_names() {
    let lesson = port_lesson();
    // Roles from the origin runbook's variables: category, kind, tools, description.
    let roles: Vec<_> = lesson.roles.iter().map(|r| r.variable.as_str()).collect();
    assert_eq!(roles, ["PGHOST", "PGPORT"]);
    let port = &lesson.roles[1];
    assert_eq!(port.category, runbook_core::Category::Endpoint);
    assert_eq!(port.kind, Some(runbook_core::ValueKind::Port));
    assert_eq!(port.tools, ["pg_isready", "psql"]);
    assert_eq!(port.description, "TCP port of the server");
    assert_eq!(lesson.roles[0].kind, Some(runbook_core::ValueKind::Address));
    // The roles survive YAML and the schema.
    assert_eq!(lesson_from_yaml_str(&to_yaml(&lesson)).unwrap(), lesson);
    let json = serde_json::to_value(&lesson).unwrap();
    assert_eq!(validate(&lesson_json_schema(), &json), Vec::<String>::new());

    // A runbook with other names: the check is rewritten, and so is the fix's prose.
    let mut other = shared_runbook("pg-other-names.yaml");
    assert!(lesson.applies_to(&other));
    let fit = lesson.fit(&other).unwrap();
    assert_eq!(
        fit.renamed,
        [
            ("PGHOST".to_owned(), "DB_ADDR".to_owned()),
            ("PGPORT".to_owned(), "DB_LISTEN_PORT".to_owned())
        ]
    );
    assert_eq!(
        fit.lesson.preflight.as_ref().unwrap().command_text(),
        Some(r#"! (exec 3<>"/dev/tcp/$DB_ADDR/$DB_LISTEN_PORT") 2>/dev/null"#)
    );
    assert_eq!(
        fit.lesson.known_issue.as_ref().unwrap().fix,
        "Choose a free port for DB_LISTEN_PORT, or stop the other process"
    );
    let warnings = runbook_core::unaddressed_lessons(&other, std::slice::from_ref(&lesson));
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].help.contains("$DB_ADDR/$DB_LISTEN_PORT")
            && warnings[0].help.contains("DB_LISTEN_PORT for PGPORT"),
        "the help gives the check with this runbook's names: {}",
        warnings[0]
    );
    let done = other.adopt_lesson(&lesson).unwrap();
    assert!(done.preflight);
    assert_eq!(done.steps, ["start"]);
    assert_eq!(done.renamed, fit.renamed);
    assert!(
        other.lint().iter().all(|d| !d.is_error()),
        "{:#?}",
        other.lint()
    );
    assert!(lesson.is_carried_by(&other));

    // The runbook it was learnt from, and one with the same names: nothing renamed.
    let same = lesson.fit(&shared_runbook("pg-scratch.yaml")).unwrap();
    assert!(same.renamed.is_empty());
    assert_eq!(same.lesson, lesson);

    // A typed probe is rewritten too.
    let mut typed = lesson.clone();
    typed.preflight = Some(Check::tcp("${PGHOST}", "${PGPORT}"));
    let fitted = typed.fit(&other).unwrap().lesson.preflight.unwrap();
    assert_eq!(
        fitted.probe,
        Check::tcp("${DB_ADDR}", "${DB_LISTEN_PORT}").probe
    );
}

#[test]
fn a_lesson_whose_role_no_variable_plays_is_not_carried_and_says_why() {
    let lesson = port_lesson();
    // No TCP endpoint at all.
    let mut socket = shared_runbook("pg-socket-only.yaml");
    assert!(lesson.applies_to(&socket));
    let before = socket.clone();
    let misfit = socket.adopt_lesson(&lesson).unwrap_err();
    assert_eq!(socket, before, "nothing carried");
    assert_eq!(misfit.problems.len(), 2, "{misfit}");
    assert!(
        misfit.to_string().contains("lesson `pg-port-taken`")
            && misfit.problems[1]
                .contains("no variable of this runbook plays the role of `$PGPORT`")
            && misfit.problems[1].contains("endpoint port used with pg_isready or psql"),
        "{misfit}"
    );
    let warnings = runbook_core::unaddressed_lessons(&socket, std::slice::from_ref(&lesson));
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].message.contains("cannot be carried")
            && warnings[0].message.contains("`$PGPORT`"),
        "{}",
        warnings[0]
    );

    // Two ports the description cannot tell apart: refused rather than guessed; one it
    // can: chosen.
    let mut two = shared_runbook("pg-other-names.yaml");
    let mut second = two.variables[2].clone();
    second.name = "DB_OTHER_PORT".into();
    two.variables.push(second);
    two.steps[1].verify[0] = Check::command(
        "pg_isready --host=\"$DB_ADDR\" --port=\"$DB_LISTEN_PORT\" && pg_isready --port=\"$DB_OTHER_PORT\"",
    );
    let misfit = lesson.fit(&two).unwrap_err();
    assert!(
        misfit.problems[0].contains("several variables")
            && misfit.problems[0].contains("`DB_OTHER_PORT`"),
        "{misfit}"
    );
    two.variables[3].description = "A port for something else".into();
    two.variables[3].production = String::new();
    let fit = lesson.fit(&two).unwrap();
    assert!(
        fit.renamed
            .contains(&("PGPORT".into(), "DB_LISTEN_PORT".into())),
        "{:?}",
        fit.renamed
    );
}

#[test]
fn the_known_issue_goes_to_the_step_that_failed_not_every_step_with_the_tool() {
    let feedback = runbook_core::load_feedback(shared("start-standby.yaml")).unwrap();
    let origin = shared_runbook("pg-pair.yaml");
    let draft = LessonDraft {
        cause: Some("The standby's port is taken".into()),
        fix: Some("Choose another STANDBY_PORT".into()),
        origin: Some(origin.clone()),
        ..LessonDraft::default()
    };
    let lesson = Lesson::from_feedback(&feedback, draft.clone()).unwrap();
    // Without --commands: the failing command's tool and subcommand.
    assert_eq!(
        lesson.applies.commands.as_deref(),
        Some(r"\bpg_ctl\b[^\n]*\bstart\b")
    );
    let mut pair = origin.clone();
    let done = pair.adopt_lesson(&lesson).unwrap();
    assert_eq!(done.steps, ["start-standby"], "not start-primary");
    // Elsewhere, the steps whose command matches: pg-scratch's start, not its init.
    let mut scratch = shared_runbook("pg-scratch.yaml");
    assert_eq!(scratch.adopt_lesson(&lesson).unwrap().steps, ["start"]);

    // --commands narrows it; one the failing command does not match is refused.
    let narrowed = Lesson::from_feedback(
        &feedback,
        LessonDraft {
            commands: Some(r"pg_ctl .*STANDBY_DATA.* start".into()),
            ..draft.clone()
        },
    )
    .unwrap();
    assert!(!narrowed.applies_to(&scratch), "scratch has no standby");
    let refused = Lesson::from_feedback(
        &feedback,
        LessonDraft {
            commands: Some("initdb".into()),
            ..draft.clone()
        },
    )
    .unwrap_err();
    assert!(
        refused.0.contains("does not match the command that failed"),
        "{refused}"
    );

    // A check with a variable the origin does not declare is refused at once.
    let unknown = Lesson::from_feedback(
        &feedback,
        LessonDraft {
            check: Some(Check::command("test -n \"$DB_HOST\"")),
            ..draft
        },
    )
    .unwrap_err();
    assert!(unknown.0.contains("`$DB_HOST`"), "{unknown}");
}

#[test]
fn lessons_written_before_roles_still_load_and_fit_by_name() {
    let lessons = load_lessons(shared("lessons-before-roles")).unwrap();
    assert_eq!(lessons.len(), 1);
    let old = &lessons[0];
    assert!(old.roles.is_empty() && old.applies.commands.is_none());
    // Into a runbook that declares the same names: carried as before.
    let mut scratch = shared_runbook("pg-scratch.yaml");
    let done = scratch.adopt_lesson(old).unwrap();
    assert!(done.preflight && done.renamed.is_empty());
    assert_eq!(done.steps, ["start"], "by tool, as before patterns");
    // Into one with other names: skipped, and the message says what to add.
    let misfit = shared_runbook("pg-other-names.yaml")
        .adopt_lesson(old)
        .unwrap_err();
    assert!(
        misfit.problems[0].contains("states no role") && misfit.problems[0].contains("roles:"),
        "{misfit}"
    );
}
