//! `runbook run --matrix`: one runbook against several targets at once, one compatibility
//! table. The local provider's matrix (variable values) runs everywhere; the container
//! provider's (two Debian images, PostgreSQL 15 and 17) needs the engine of
//! `tests/container/engine.sh start`.

mod common;
#[path = "common/container.rs"]
mod container;
#[cfg(feature = "kube")]
#[path = "../runbook-exec/tests/common/kube_mock.rs"]
mod kube_mock;

use std::process::Output;

use container::{repo, runbook_cli};

fn said(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const GREETINGS: &str = r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: greetings, title: Write the greeting }
variables:
  - { name: GREETING, category: other, sandbox: hello, production: The greeting }
steps:
  - id: write
    title: Write it
    run: printf '%s\n' "$GREETING" > greeting.txt
    verify:
      - name: a polite greeting
        run: "! grep -q 'go away' greeting.txt"
    rollback: { run: rm greeting.txt }
  - id: sign
    title: Sign it
    run: echo signed >> greeting.txt
    verify: [{ name: signed, run: grep -q signed greeting.txt }]
    rollback: { run: sed -i '$d' greeting.txt }
targets:
  - name: polite
  - name: rude
    values: { GREETING: go away }
"#;

#[test]
fn a_matrix_of_values_on_the_local_provider_says_where_it_fails_and_why() {
    let dir = common::workdir("runbook-matrix-");
    let file = dir.path().join("greetings.yaml");
    std::fs::write(&file, GREETINGS).unwrap();
    let out = runbook_cli(
        dir.path(),
        "state",
        &[
            "run",
            &file.to_string_lossy(),
            "--matrix",
            "--jobs",
            "2",
            "--out",
            "m",
        ],
    );
    // `rude` fails and nobody expected it: the matrix is red.
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    let table = std::fs::read_to_string(dir.path().join("m/compatibility.md")).unwrap();
    assert!(table.contains("The matrix is **RED**"), "{table}");
    assert!(
        table.contains("| `write` | passed | failed at check `a polite greeting` |"),
        "{table}"
    );
    assert!(
        table.contains("| `sign` | passed | not reached |"),
        "{table}"
    );
    assert!(
        table.contains("| **verdict** | ✓ passed, rehearsed | ✗ failed |"),
        "{table}"
    );
    let yaml = std::fs::read_to_string(dir.path().join("m/compatibility.yaml")).unwrap();
    assert!(
        yaml.contains("green: false") && yaml.contains("provenOn:\n- polite"),
        "{yaml}"
    );
    // Each target's package is whole: the passing one rehearsed, the failing one says why.
    assert!(dir.path().join("m/polite/scripts/deploy.sh").exists());
    let rude = std::fs::read_to_string(dir.path().join("m/rude/README.md")).unwrap();
    assert!(rude.contains("FAILED"), "{rude}");

    // Expected to fail, with its reason: green, and the package says so.
    let expected = GREETINGS.replace(
        "values: { GREETING: go away }\n",
        "values: { GREETING: go away }\n    expect: fail\n    reason: the greeting must be polite\n",
    );
    std::fs::write(&file, expected).unwrap();
    let out = runbook_cli(
        dir.path(),
        "state",
        &[
            "run",
            &file.to_string_lossy(),
            "--matrix",
            "--out",
            "m",
            "--force",
        ],
    );
    assert!(out.status.success(), "{}", said(&out));
    let table = std::fs::read_to_string(dir.path().join("m/compatibility.md")).unwrap();
    assert!(
        table.contains("**Not supported on rude**, because the greeting must be polite"),
        "{table}"
    );
    assert!(
        table.contains("| **verdict** | ✓ passed, rehearsed | ✓ failed |"),
        "{table}"
    );

    // One target alone.
    let out = runbook_cli(
        dir.path(),
        "state",
        &[
            "run",
            &file.to_string_lossy(),
            "--matrix",
            "--target",
            "polite",
            "--out",
            "one",
        ],
    );
    assert!(out.status.success(), "{}", said(&out));
    assert!(!dir.path().join("one/rude").exists());
}

#[test]
fn a_bad_matrix_is_refused_before_anything_runs() {
    let dir = common::workdir("runbook-matrix-");
    let file = dir.path().join("bad.yaml");
    let bad = GREETINGS
        .replace(
            "values: { GREETING: go away }",
            "values: { GREETNG: go away }\n    expect: fail",
        )
        .replace("  - name: polite\n", "  - name: polite\n  - name: polite\n");
    std::fs::write(&file, bad).unwrap();
    let out = runbook_cli(
        dir.path(),
        "state",
        &["run", &file.to_string_lossy(), "--matrix", "--out", "m"],
    );
    let text = said(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("target `polite` is named twice"), "{text}");
    assert!(
        text.contains("target `rude` is expected to fail without a `reason`"),
        "{text}"
    );
    assert!(
        text.contains("`GREETNG` (did you mean `GREETING`?)"),
        "{text}"
    );
    assert!(!dir.path().join("m").exists());
    let out = runbook_cli(
        dir.path(),
        "state",
        &[
            "run",
            &file.to_string_lossy(),
            "--matrix",
            "--target",
            "nope",
            "--out",
            "m",
        ],
    );
    assert!(
        said(&out).contains("the runbook has no target `nope`"),
        "{}",
        said(&out)
    );
}

/// The example as committed (PostgreSQL 17 expected to fail) and with that expectation
/// removed: the table shows the difference with the server's reason line either way.
#[test]
#[ignore = "needs a container engine and the test images: tests/container/engine.sh start"]
fn postgres_15_and_17_side_by_side_in_containers() {
    let dir = common::workdir("runbook-matrix-");
    let example = repo().join("examples/matrix/runbook.yaml");
    let text = std::fs::read_to_string(&example).unwrap();
    let unexpected = dir.path().join("unexpected.yaml");
    let cut = text.find("    expect: fail").unwrap();
    std::fs::write(&unexpected, &text[..cut]).unwrap();
    let out = runbook_cli(
        dir.path(),
        "state",
        &[
            "run",
            &unexpected.to_string_lossy(),
            "--matrix",
            "--provider",
            "container",
            "--out",
            "red",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    let table = std::fs::read_to_string(dir.path().join("red/compatibility.md")).unwrap();
    assert!(table.contains("The matrix is **RED**"), "{table}");
    assert!(
        table.contains("| `bound-old-snapshots` | passed | failed |"),
        "{table}"
    );
    assert!(
        table.contains("- **debian13-pg17**: ERROR: unrecognized configuration parameter \"old_snapshot_threshold\""),
        "{table}"
    );
    assert!(
        table.contains("initdb 15.") && table.contains("initdb 17."),
        "{table}"
    );
    assert!(table.contains("Debian GNU/Linux 13 (trixie)"), "{table}");

    let out = runbook_cli(
        dir.path(),
        "state",
        &[
            "run",
            &example.to_string_lossy(),
            "--matrix",
            "--provider",
            "container",
            "--out",
            "green",
        ],
    );
    assert!(out.status.success(), "{}", said(&out));
    let yaml = std::fs::read_to_string(dir.path().join("green/compatibility.yaml")).unwrap();
    assert!(yaml.contains("green: true"), "{yaml}");
    assert!(yaml.contains("provenOn:\n- debian12-pg15"), "{yaml}");
    assert!(
        yaml.contains(
            "notSupported:\n- 'debian13-pg17: PostgreSQL 17 removed old_snapshot_threshold"
        ) || yaml.contains(
            "notSupported:\n- \"debian13-pg17: PostgreSQL 17 removed old_snapshot_threshold"
        ) || yaml.contains("notSupported:\n- debian13-pg17: PostgreSQL 17"),
        "{yaml}"
    );
    let versions =
        std::fs::read_to_string(dir.path().join("green/debian12-pg15/versions.yaml")).unwrap();
    assert!(
        versions.contains("image: localhost/runbook-test/bookworm-pg15:latest"),
        "{versions}"
    );
}

/// A matrix of kube contexts against two fake API servers (the kube project's testing
/// convention): each target gets the provider of its own context; the table tells the
/// cluster whose pods never became ready from the one whose did.
#[cfg(feature = "kube")]
#[tokio::test(flavor = "multi_thread")]
async fn a_matrix_of_kube_contexts_runs_each_target_on_its_own_cluster() {
    use std::sync::Arc;

    use kube_mock::{client, created, ex, namespace, nodes, not_found, pods, serve, version};
    use runbook::exec::{KubeProvider, LocalProvider, NoObserver};
    use runbook::matrix::{MatrixRequest, TargetRun};
    use runbook::{Check, KubeCheck, MatrixTarget, Runbook, Step};

    let dir = common::workdir("runbook-matrix-");
    let cluster = |context: &str, ready: bool| {
        let (client, handle) = client();
        let mut script = vec![
            created(),
            ex("GET", "/version", 200, version()),
            ex("GET", "/api/v1/nodes", 200, nodes(1)),
            ex("GET", "/api/v1/namespaces/rb-", 200, pods(ready)),
        ];
        if !ready {
            // The failed step's diagnostics: the pods, then the events.
            script.push(ex("GET", "/api/v1/namespaces/rb-", 200, pods(false)));
            script.push(ex(
                "GET",
                "/api/v1/namespaces/rb-",
                200,
                serde_json::json!({"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": []}),
            ));
        }
        script.push(ex(
            "DELETE",
            "/api/v1/namespaces/rb-",
            200,
            namespace("rb-x", "Terminating"),
        ));
        script.push(ex("GET", "/api/v1/namespaces/rb-", 404, not_found("rb-x")));
        let server = serve(handle, script);
        let provider = KubeProvider::new(
            client,
            context,
            "https://127.0.0.1:41234",
            &["kind-*".to_owned()],
            LocalProvider::with_root(dir.path().join("state")),
        )
        .unwrap()
        .teardown_wait(
            std::time::Duration::from_millis(400),
            std::time::Duration::from_millis(50),
        );
        (provider, server)
    };
    let (ready, ready_server) = cluster("kind-v129", true);
    let (broken, _broken_server) = cluster("kind-v125", false);
    let runbook = Runbook::builder("db")
        .step(
            Step::new("deploy", "Deploy")
                .run("true")
                .read_only()
                .verify(Check::kube(KubeCheck::PodsReady {
                    selector: "app=db".into(),
                    count: 1,
                })),
        )
        .build_unchecked();
    let target = |name: &str, context: &str| {
        let mut t = MatrixTarget::new(name);
        t.context = Some(context.into());
        t
    };
    let runs = vec![
        TargetRun {
            target: target("k8s-129", "kind-v129"),
            provider: Arc::new(ready),
            observer: Arc::new(NoObserver),
        },
        TargetRun {
            target: target("k8s-125", "kind-v125"),
            provider: Arc::new(broken),
            observer: Arc::new(NoObserver),
        },
    ];
    let request = MatrixRequest {
        out: dir.path().join("out"),
        force: false,
        rehearse: false,
        jobs: 2,
        vars: Default::default(),
        exercise_rollback: false,
    };
    let outcome = runbook::matrix::run(&runbook, runs, &request)
        .await
        .unwrap();
    assert!(!outcome.green);
    assert_eq!(outcome.proven_on, ["k8s-129"]);
    let table = std::fs::read_to_string(dir.path().join("out/compatibility.md")).unwrap();
    assert!(
        table.contains("| *target* | kind-v129 | kind-v125 |"),
        "{table}"
    );
    assert!(
        table.contains("| `deploy` | passed | failed at check"),
        "{table}"
    );
    assert_eq!(ready_server.await.unwrap().len(), 6);
}
