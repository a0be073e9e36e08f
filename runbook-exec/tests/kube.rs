//! The Kubernetes provider against a mocked API server, following the kube project's own
//! convention (`tower_test::mock::pair` with `kube::Client::new`): every request is
//! asserted, responses are realistic (409 conflicts, 404s, 403s, a namespace stuck
//! terminating). Tests that need a real cluster are ignored by default.
#![cfg(feature = "kube")]

mod common;

use std::time::Duration;

use runbook_core::report::Verdict;
use runbook_core::{Category, Check, KubeCheck, Lifetime, Runbook, Step, Variable};
use runbook_exec::kube::{KubeProvider, MANAGED_BY};
use runbook_exec::{Provider, ProvisionRequest, RunMode, RunOptions, run_all};
use serde_json::{Value, json};

// The fake API server (shared with the matrix's test of kube contexts).
#[path = "common/kube_mock.rs"]
mod kube_mock;
use kube_mock::{
    Exchange, Seen, client, created, ex, namespace, nodes, not_found, pods, serve, status, version,
};

fn provider(client: kube::Client) -> (common::TestRoot, KubeProvider) {
    let (dir, local) = common::provider();
    let p = KubeProvider::new(
        client,
        "kind-sandbox",
        "https://127.0.0.1:41234",
        &["kind-*".to_owned()],
        local,
    )
    .unwrap()
    .teardown_wait(Duration::from_millis(400), Duration::from_millis(50));
    (dir, p)
}

fn request(lifetime: Lifetime) -> ProvisionRequest {
    ProvisionRequest::new("postgres", lifetime)
}

/// The namespace name the provider chose, from the create request.
fn created_name(seen: &Seen) -> String {
    seen.body["metadata"]["name"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_context_not_allowed_as_a_sandbox_is_refused() {
    let (client, _handle) = client();
    let (_dir, local) = common::provider();
    let err = KubeProvider::new(
        client.clone(),
        "prod-eks",
        "https://ABCD.gr7.eu-west-1.eks.amazonaws.com",
        &["kind-*".to_owned(), "k3d-*".to_owned()],
        local.clone(),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("refusing to use kube context `prod-eks`"),
        "{text}"
    );
    assert!(
        text.contains(
            "RUNBOOK_KUBE_CONTEXTS='prod-eks@https://ABCD.gr7.eu-west-1.eks.amazonaws.com'"
        ),
        "the refusal says how to allow it, server included: {text}"
    );
    // A sandbox-looking name is not enough when the server is remote.
    let err = KubeProvider::new(
        client.clone(),
        "kind-ci",
        "https://prod.example.com:6443/",
        &["kind-*".to_owned()],
        local.clone(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("(server https://prod.example.com:6443/)"),
        "{err}"
    );
    let allowed = KubeProvider::new(
        client,
        "dev",
        "https://sandbox.example.com:6443/",
        &[
            "kind-*".to_owned(),
            "dev@https://sandbox.example.com:*".to_owned(),
        ],
        local,
    )
    .unwrap();
    assert!(
        allowed
            .allowed_by()
            .ends_with("allowed by `dev@https://sandbox.example.com:*`"),
        "{}",
        allowed.allowed_by()
    );
    let local = "https://127.0.0.1:41234";
    let kind = ["kind-*".to_owned()];
    assert!(runbook_exec::kube::context_allowed("kind-ci", local, &kind).is_some());
    assert!(runbook_exec::kube::context_allowed("kind-ci", "https://[::1]:6443", &kind).is_some());
    assert!(
        runbook_exec::kube::context_allowed("kind-ci", "https://localhost:6443", &kind).is_some()
    );
    assert!(runbook_exec::kube::context_allowed("kind", local, &kind).is_none());
    assert!(
        runbook_exec::kube::context_allowed("dev-sandbox", local, &["*-sandbox".to_owned()])
            .is_some()
    );
    // `127.0.0.1.example.com` is not loopback.
    assert!(
        runbook_exec::kube::context_allowed("kind-ci", "https://127.0.0.1.example.com", &kind)
            .is_none()
    );
}

#[tokio::test]
async fn a_sandbox_is_a_labelled_namespace_and_teardown_waits_until_it_is_gone() {
    let (client, handle) = client();
    let (_dir, provider) = provider(client);
    // The name is random; the script answers whatever was asked.
    let server = serve(
        handle,
        vec![
            created(),
            ex("GET", "/version", 200, version()),
            ex("GET", "/api/v1/nodes", 200, nodes(1)),
            ex(
                "DELETE",
                "/api/v1/namespaces/rb-postgres-",
                200,
                namespace("rb-x", "Terminating"),
            ),
            ex(
                "GET",
                "/api/v1/namespaces/rb-postgres-",
                200,
                namespace("rb-x", "Terminating"),
            ),
            ex(
                "GET",
                "/api/v1/namespaces/rb-postgres-",
                404,
                not_found("rb-x"),
            ),
        ],
    );
    let mut sandbox = provider
        .provision(&request(Lifetime::Session))
        .await
        .unwrap();
    let ns = format!("rb-{}", sandbox.id());
    assert_eq!(sandbox.fixed_values()["NAMESPACE"], ns);
    // Step commands run locally with NAMESPACE set to the sandbox namespace.
    struct Sink(Vec<u8>);
    impl runbook_exec::OutputSink for Sink {
        fn output(&mut self, _: runbook_exec::Stream, bytes: &[u8]) {
            self.0.extend_from_slice(bytes);
        }
    }
    let mut sink = Sink(Vec::new());
    let spec = runbook_exec::CommandSpec {
        command: "echo \"$NAMESPACE\"".into(),
        env: [("NAMESPACE".to_owned(), "from-the-runbook".to_owned())].into(),
        workdir: None,
        timeout: Duration::from_secs(5),
        errexit: false,
    };
    sandbox.run(&spec, &mut sink).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&sink.0).trim(),
        ns,
        "the sandbox namespace wins over the runbook's value"
    );
    let d = sandbox.describe().await.unwrap();
    assert_eq!(d.provider, "kube");
    assert_eq!(d.versions["kubernetes"], "v1.29.2");
    assert_eq!(d.nodes, 1);
    sandbox.teardown().await.unwrap();
    let seen = server.await.unwrap();
    assert_eq!(created_name(&seen[0]), ns);
    let labels = &seen[0].body["metadata"]["labels"];
    assert_eq!(labels[MANAGED_BY], "runbook");
    assert_eq!(labels["runbook.dev/runbook"], "postgres");
    assert_eq!(labels["runbook.dev/lifetime"], "session");
    assert_eq!(labels["runbook.dev/sandbox"], sandbox.id());
    assert!(
        seen[0].body["metadata"]["annotations"]["runbook.dev/expires-at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(seen[3].uri, format!("/api/v1/namespaces/{ns}?"));
}

#[tokio::test]
async fn a_name_conflict_gets_a_fresh_name() {
    let (client, handle) = client();
    let (_dir, provider) = provider(client);
    let server = serve(
        handle,
        vec![
            ex(
                "POST",
                "/api/v1/namespaces?",
                409,
                status(409, "AlreadyExists", "namespaces \"rb-x\" already exists"),
            ),
            ex(
                "POST",
                "/api/v1/namespaces?",
                201,
                namespace("rb-y", "Active"),
            ),
        ],
    );
    let mut sandbox = provider
        .provision(&request(Lifetime::Persistent))
        .await
        .unwrap();
    sandbox.keep();
    let seen = server.await.unwrap();
    assert_ne!(created_name(&seen[0]), created_name(&seen[1]));
    assert_eq!(created_name(&seen[1]), format!("rb-{}", sandbox.id()));
}

#[tokio::test]
async fn a_namespace_stuck_terminating_is_reported_not_hung_on() {
    let (client, handle) = client();
    let (_dir, provider) = provider(client);
    let mut script = vec![
        created(),
        ex(
            "DELETE",
            "/api/v1/namespaces/",
            200,
            namespace("rb-x", "Terminating"),
        ),
    ];
    // Every look finds it still terminating (a finalizer that never clears).
    for _ in 0..8 {
        script.push(ex(
            "GET",
            "/api/v1/namespaces/",
            200,
            namespace("rb-x", "Terminating"),
        ));
    }
    let _server = serve(handle, script);
    let mut sandbox = provider
        .provision(&request(Lifetime::Ephemeral))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = sandbox.teardown().await.unwrap_err().to_string();
    assert!(
        err.contains("is still Terminating") && err.contains("finalizers"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "bounded");
}

#[tokio::test]
async fn a_namespace_already_terminating_is_waited_for_not_an_error() {
    let (client, handle) = client();
    let (_dir, provider) = provider(client);
    let _server = serve(
        handle,
        vec![
            created(),
            ex(
                "DELETE",
                "/api/v1/namespaces/",
                409,
                status(
                    409,
                    "Conflict",
                    "the system is ensuring all content is removed",
                ),
            ),
            ex(
                "GET",
                "/api/v1/namespaces/",
                200,
                namespace("rb-x", "Terminating"),
            ),
            ex("GET", "/api/v1/namespaces/", 404, not_found("rb-x")),
        ],
    );
    let mut sandbox = provider
        .provision(&request(Lifetime::Ephemeral))
        .await
        .unwrap();
    sandbox.teardown().await.unwrap();
}

#[tokio::test]
async fn typed_pod_checks_go_through_the_api() {
    let (client, handle) = client();
    let (_dir, provider) = provider(client);
    let server = serve(
        handle,
        vec![
            created(),
            ex("GET", "/api/v1/namespaces/rb-postgres-", 200, pods(false)),
            ex("GET", "/api/v1/namespaces/rb-postgres-", 200, pods(true)),
        ],
    );
    let mut sandbox = provider
        .provision(&request(Lifetime::Session))
        .await
        .unwrap();
    let check = KubeCheck::PodsReady {
        selector: "app=db".into(),
        count: 1,
    };
    let pending = sandbox
        .probe(&runbook_core::Probe::Kube(check.clone()))
        .await
        .unwrap();
    assert!(!pending.satisfied);
    assert!(
        pending.actual.contains("0 of 1 pod(s)") && pending.actual.contains("Pending"),
        "{}",
        pending.actual
    );
    let ready = sandbox
        .probe(&runbook_core::Probe::Kube(check.clone()))
        .await
        .unwrap();
    assert!(ready.satisfied, "{}", ready.actual);
    sandbox.keep();
    let seen = server.await.unwrap();
    assert!(
        seen[1]
            .uri
            .contains(&format!("/namespaces/rb-{}/pods", sandbox.id()))
    );
    assert!(
        seen[1].uri.contains("labelSelector=app%3Ddb"),
        "{}",
        seen[1].uri
    );
}

#[tokio::test]
async fn forbidden_node_listing_leaves_the_node_count_unknown() {
    let (client, handle) = client();
    let (_dir, provider) = provider(client);
    let _server = serve(
        handle,
        vec![
            created(),
            ex("GET", "/version", 200, version()),
            ex(
                "GET",
                "/api/v1/nodes",
                403,
                status(
                    403,
                    "Forbidden",
                    "nodes is forbidden: User cannot list resource",
                ),
            ),
        ],
    );
    let mut sandbox = provider
        .provision(&request(Lifetime::Session))
        .await
        .unwrap();
    assert_eq!(sandbox.describe().await.unwrap().nodes, 0);
    sandbox.keep();
}

fn terminating(name: &str) -> Value {
    json!({"metadata": {"name": name, "deletionTimestamp": "2026-01-01T00:00:00Z",
           "labels": {MANAGED_BY: "runbook", "runbook.dev/sandbox": name},
           "annotations": {"runbook.dev/expires-at": "2020-01-01T00:00:00Z"}},
           "status": {"phase": "Terminating"}})
}

#[tokio::test]
async fn the_reaper_deletes_only_expired_sandbox_namespaces() {
    let (client, handle) = client();
    let (_dir, provider) = provider(client);
    let ns = |name: &str, expires: &str| {
        json!({"metadata": {"name": name, "labels": {MANAGED_BY: "runbook", "runbook.dev/sandbox": name},
               "annotations": {"runbook.dev/expires-at": expires}}})
    };
    let server = serve(
        handle,
        vec![
            ex(
                "GET",
                "/api/v1/namespaces?",
                200,
                json!({"apiVersion": "v1", "kind": "NamespaceList", "metadata": {},
            "items": [ns("rb-old", "2020-01-01T00:00:00Z"), ns("rb-new", "2999-01-01T00:00:00Z"),
                      terminating("rb-going"), ns("rb-busy", "2020-01-01T00:00:00Z"),
                      ns("rb-broken", "2020-01-01T00:00:00Z")]}),
            ),
            ex(
                "DELETE",
                "/api/v1/namespaces/rb-old",
                200,
                namespace("rb-old", "Terminating"),
            ),
            // Deleting one already terminating answers 409: not an error, and not the end.
            ex(
                "DELETE",
                "/api/v1/namespaces/rb-busy",
                409,
                status(
                    409,
                    "Conflict",
                    "the system is ensuring all content is removed",
                ),
            ),
            ex(
                "DELETE",
                "/api/v1/namespaces/rb-broken",
                500,
                status(500, "InternalError", "etcd is sad"),
            ),
        ],
    );
    let reaped = provider.reap_namespaces().await.unwrap();
    assert_eq!(reaped.destroyed, ["rb-old"]);
    assert!(
        reaped
            .skipped
            .iter()
            .any(|(n, why)| n == "rb-broken" && why.contains("etcd is sad")),
        "{reaped:?}"
    );
    let seen = server.await.unwrap();
    assert!(
        seen[0]
            .uri
            .contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Drunbook"),
        "{}",
        seen[0].uri
    );
    assert_eq!(
        seen.len(),
        4,
        "rb-new (not expired) and rb-going (already deleting) are left alone"
    );
}

#[tokio::test]
async fn the_engine_runs_a_runbook_in_a_namespace_with_typed_checks() {
    let (client, handle) = client();
    let (_dir, provider) = provider(client);
    let server = serve(
        handle,
        vec![
            created(),
            ex("GET", "/version", 200, version()),
            ex("GET", "/api/v1/nodes", 200, nodes(1)),
            ex("GET", "/api/v1/namespaces/rb-", 200, pods(true)),
            ex(
                "DELETE",
                "/api/v1/namespaces/rb-",
                200,
                namespace("rb-x", "Terminating"),
            ),
            ex("GET", "/api/v1/namespaces/rb-", 404, not_found("rb-x")),
        ],
    );
    let runbook = Runbook::builder("postgres")
        .variable(
            Variable::new("NAMESPACE", Category::Namespace)
                .sandbox("sandbox-test")
                .production("yours"),
        )
        .step(
            Step::new("deploy", "Deploy")
                .run("echo deploying into \"$NAMESPACE\"")
                .read_only()
                .verify(Check::kube(KubeCheck::PodsReady {
                    selector: "app=db".into(),
                    count: 1,
                })),
        )
        .build_unchecked();
    let options = RunOptions {
        lifetime: Some(Lifetime::Ephemeral),
        ..RunOptions::default()
    };
    let outcome = run_all(&provider, runbook, options, RunMode::default())
        .await
        .unwrap();
    assert_eq!(
        outcome.report.verdict,
        Verdict::Passed,
        "{:#?}",
        outcome.report
    );
    assert_eq!(outcome.report.sandbox.nodes, 1);
    assert!(
        outcome.report.steps[0].attempts[0]
            .output
            .stdout
            .starts_with("deploying into rb-postgres-")
    );
    assert_eq!(server.await.unwrap().len(), 6);
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster"]
async fn the_kubernetes_example_runs_on_a_real_cluster() {
    let (_dir, local) = common::provider();
    let provider = KubeProvider::from_kubeconfig(local, &["kind-*".to_owned(), "k3d-*".to_owned()])
        .await
        .unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/kubernetes/runbook.yaml");
    let runbook = runbook_core::load(path).unwrap().0;
    let options = RunOptions {
        lifetime: Some(Lifetime::Ephemeral),
        ..RunOptions::default()
    };
    let outcome = run_all(
        &provider,
        runbook,
        options,
        RunMode {
            exercise_rollback: true,
            ..RunMode::default()
        },
    )
    .await
    .unwrap();
    assert!(outcome.passed(), "{:#?}", outcome.report);
}

#[tokio::test]
async fn a_failing_step_records_pods_events_and_logs() {
    let (client, handle) = client();
    let (_dir, provider) = provider(client);
    // 25 kubelet events with `lastTimestamp`, then the scheduler's, which has only
    // `eventTime` (its `lastTimestamp` is null) and is the latest of all.
    let mut items: Vec<Value> = (0..25)
        .map(|i| {
            json!({
                "metadata": {"name": format!("e{i}")}, "type": "Normal", "reason": "Pulled",
                "message": format!("image pulled ({i})"),
                "involvedObject": {"kind": "Pod", "name": "db-postgresql-0"},
                "lastTimestamp": format!("2026-11-27T10:00:{i:02}Z"),
                "firstTimestamp": format!("2026-11-27T10:00:{i:02}Z")
            })
        })
        .collect();
    items.insert(
        0,
        json!({
            "metadata": {"name": "sched"}, "type": "Warning", "reason": "FailedScheduling",
            "message": "0/1 nodes are available: insufficient memory.",
            "involvedObject": {"kind": "Pod", "name": "db-postgresql-0"},
            "eventTime": "2026-11-27T10:01:00.123456Z", "lastTimestamp": null,
            "reportingComponent": "default-scheduler"
        }),
    );
    let events = json!({"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": items});
    // A crash loop in one container of two: its previous instance's log holds the cause.
    let crashing = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [{
        "metadata": {"name": "db-postgresql-0", "labels": {"app": "db"}},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [
                {"name": "postgresql", "ready": false, "restartCount": 3, "image": "postgres:17",
                 "imageID": "", "started": false,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                {"name": "metrics", "ready": true, "restartCount": 0, "image": "exporter:0.15",
                 "imageID": "", "started": true, "state": {"running": {}}}
            ]}
    }]});
    let server = serve(
        handle,
        vec![
            created(),
            ex("GET", "/version", 200, version()),
            ex("GET", "/api/v1/nodes", 200, nodes(1)),
            ex("GET", "/api/v1/namespaces/rb-", 200, pods(false)),
            // Diagnostics: every pod, the events, the logs of the container that is
            // not ready: its previous instance, then the current one.
            ex("GET", "/api/v1/namespaces/rb-", 200, crashing),
            ex("GET", "/api/v1/namespaces/rb-", 200, events),
            ex(
                "GET",
                "/api/v1/namespaces/rb-",
                200,
                json!("FATAL: could not map anonymous shared memory"),
            ),
            ex(
                "GET",
                "/api/v1/namespaces/rb-",
                200,
                json!("waiting for the volume\nstill waiting"),
            ),
            ex(
                "DELETE",
                "/api/v1/namespaces/rb-",
                200,
                namespace("rb-x", "Terminating"),
            ),
            ex("GET", "/api/v1/namespaces/rb-", 404, not_found("rb-x")),
        ],
    );
    let runbook = Runbook::builder("postgres")
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
    let options = RunOptions {
        lifetime: Some(Lifetime::Ephemeral),
        ..RunOptions::default()
    };
    let outcome = run_all(&provider, runbook, options, RunMode::default())
        .await
        .unwrap();
    assert_eq!(outcome.report.verdict, Verdict::Failed);
    let d = &outcome.report.steps[0].attempts[0].diagnostics;
    assert!(
        d.contains("db-postgresql-0: Running ready 1/2 restarts 3 (CrashLoopBackOff)"),
        "{d}"
    );
    // Ordered by the latest of each event's timestamps: the scheduler's event is last
    // and kept; the oldest kubelet events are dropped past 20.
    assert!(
        d.trim_end().contains(
            "Warning FailedScheduling Pod/db-postgresql-0: 0/1 nodes are available: insufficient memory.\nlast 20 log lines"
        ),
        "{d}"
    );
    assert!(
        !d.contains("image pulled (5)") && d.contains("image pulled (6)"),
        "{d}"
    );
    assert!(
        d.contains("previous instance of db-postgresql-0/postgresql:\n  FATAL: could not map"),
        "{d}"
    );
    assert!(
        d.contains("of db-postgresql-0/postgresql:\n  waiting for the volume"),
        "{d}"
    );
    assert!(
        !d.contains("/metrics:"),
        "a ready container's log is not fetched: {d}"
    );
    let seen = server.await.unwrap();
    assert!(seen[5].uri.contains("/events"), "{}", seen[5].uri);
    let log = "/pods/db-postgresql-0/log?&container=postgresql&limitBytes=16384";
    assert!(
        seen[6]
            .uri
            .ends_with(&format!("{log}&previous=true&tailLines=20")),
        "{}",
        seen[6].uri
    );
    assert!(
        seen[7].uri.ends_with(&format!("{log}&tailLines=20")),
        "{}",
        seen[7].uri
    );
}

#[tokio::test]
async fn a_persistent_sandbox_keeps_its_namespace_and_is_found_again_by_label() {
    let (client, handle) = client();
    let (_dir, provider) = provider(client);
    let server = serve(
        handle,
        vec![
            created(),
            ex(
                "GET",
                "/api/v1/namespaces?",
                200,
                json!({"apiVersion": "v1", "kind": "NamespaceList", "metadata": {},
            "items": [{"metadata": {"name": "rb-found-by-label"}}]}),
            ),
            ex(
                "GET",
                "/api/v1/namespaces?",
                200,
                json!({"apiVersion": "v1", "kind": "NamespaceList", "metadata": {}, "items": []}),
            ),
        ],
    );
    let mut sandbox = provider
        .provision(&request(Lifetime::Persistent))
        .await
        .unwrap();
    let id = sandbox.id().to_owned();
    sandbox.keep();
    drop(sandbox); // the process ends; nothing is deleted
    let resumed = provider.resume(&id).await.unwrap();
    assert_eq!(resumed.fixed_values()["NAMESPACE"], "rb-found-by-label");
    drop(resumed); // resuming holds the sandbox's lock until the sandbox is dropped
    let Err(gone) = provider.resume(&id).await else {
        panic!("a sandbox whose namespace is gone cannot be resumed");
    };
    let gone = gone.to_string();
    assert!(
        gone.contains("no namespace labelled") && gone.contains("destroy the sandbox"),
        "{gone}"
    );
    let seen = server.await.unwrap();
    assert!(
        seen[1].uri.contains(
            "labelSelector=app.kubernetes.io%2Fmanaged-by%3Drunbook%2Crunbook.dev%2Fsandbox%3D"
        ),
        "{}",
        seen[1].uri
    );
}

/// A minimal kubeconfig of the `kind-sandbox` context, whose cluster is on this machine.
fn kind_kubeconfig() -> kube::config::Kubeconfig {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "kind-sandbox",
        "clusters": [{"name": "kind", "cluster": {"server": "https://127.0.0.1:41234"}}],
        "contexts": [{"name": "kind-sandbox", "context": {"cluster": "kind", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "t"}}]
    }))
    .unwrap()
}

/// A response body kept in `tests/fixtures/kube` (Kubernetes 1.31 shapes).
fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/kube/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[tokio::test]
async fn rollouts_and_endpoints_are_judged_as_kubectl_and_the_api_define_them() {
    let (client, handle) = client();
    let (_dir, provider) = provider(client);
    let apps = "/apis/apps/v1/namespaces/rb-postgres-";
    let cases: Vec<(KubeCheck, &str, bool, &str)> = vec![
        (
            KubeCheck::RolloutComplete {
                kind: "Deployment".into(),
                name: "web".into(),
            },
            "deployment-mid-surge.json",
            false,
            "1 old replicas are pending termination",
        ),
        (
            KubeCheck::RolloutComplete {
                kind: "Deployment".into(),
                name: "web".into(),
            },
            "deployment-deadline-exceeded.json",
            false,
            "deployment \"web\" exceeded its progress deadline",
        ),
        (
            KubeCheck::RolloutComplete {
                kind: "Deployment".into(),
                name: "web".into(),
            },
            "deployment-complete.json",
            true,
            "deployment \"web\" successfully rolled out",
        ),
        (
            KubeCheck::RolloutComplete {
                kind: "StatefulSet".into(),
                name: "db".into(),
            },
            "statefulset-stale-status.json",
            false,
            "Waiting for statefulset spec update to be observed",
        ),
        (
            KubeCheck::RolloutComplete {
                kind: "StatefulSet".into(),
                name: "db".into(),
            },
            "statefulset-complete.json",
            true,
            "statefulset rolling update complete 3 pods at revision db-84f6c9d7b",
        ),
        (
            KubeCheck::RolloutComplete {
                kind: "DaemonSet".into(),
                name: "agent".into(),
            },
            "daemonset-one-unavailable.json",
            false,
            "1 of 2 updated pods are available",
        ),
        (
            KubeCheck::ServiceEndpoints { name: "web".into() },
            "endpointslices-ready-null.json",
            true,
            "1 ready endpoint(s)",
        ),
    ];
    let mut script = vec![created()];
    for (_, body, ..) in &cases {
        let prefix = if body.starts_with("endpointslices") {
            "/apis/discovery.k8s.io/v1/namespaces/rb-postgres-"
        } else {
            apps
        };
        script.push(ex("GET", prefix, 200, fixture(body)));
    }
    let server = serve(handle, script);
    let mut sandbox = provider
        .provision(&request(Lifetime::Session))
        .await
        .unwrap();
    for (check, body, satisfied, says) in &cases {
        let seen = sandbox
            .probe(&runbook_core::Probe::Kube(check.clone()))
            .await
            .unwrap();
        assert_eq!(seen.satisfied, *satisfied, "{body}: {}", seen.actual);
        assert!(seen.actual.contains(says), "{body}: {}", seen.actual);
    }
    sandbox.keep();
    let ns = format!("rb-{}", sandbox.id());
    let uris: Vec<String> = server.await.unwrap().into_iter().map(|s| s.uri).collect();
    assert_eq!(
        uris[1..],
        [
            format!("/apis/apps/v1/namespaces/{ns}/deployments/web"),
            format!("/apis/apps/v1/namespaces/{ns}/deployments/web"),
            format!("/apis/apps/v1/namespaces/{ns}/deployments/web"),
            format!("/apis/apps/v1/namespaces/{ns}/statefulsets/db"),
            format!("/apis/apps/v1/namespaces/{ns}/statefulsets/db"),
            format!("/apis/apps/v1/namespaces/{ns}/daemonsets/agent"),
            format!(
                "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices?&labelSelector=kubernetes.io%2Fservice-name%3Dweb"
            ),
        ]
    );
}

#[tokio::test]
async fn exists_and_absent_resolve_kinds_through_api_discovery() {
    let (client, handle) = client();
    let (_dir, provider) = provider(client);
    let sc = |name: &str| runbook_core::KubeObjectRef {
        api_version: "storage.k8s.io/v1".into(),
        kind: "StorageClass".into(),
        name: name.into(),
    };
    let server = serve(
        handle,
        vec![
            created(),
            ex(
                "GET",
                "/apis/storage.k8s.io/v1",
                200,
                fixture("discovery-storage.k8s.io-v1.json"),
            ),
            ex(
                "GET",
                "/apis/storage.k8s.io/v1/storageclasses/standard",
                200,
                fixture("storageclass-standard.json"),
            ),
            // The kind is known now: no second discovery request.
            ex(
                "GET",
                "/apis/storage.k8s.io/v1/storageclasses/fast",
                404,
                not_found("fast"),
            ),
            ex("GET", "/api/v1", 200, fixture("discovery-core-v1.json")),
            ex(
                "GET",
                "/api/v1/namespaces/rb-postgres-",
                200,
                json!({"kind": "Endpoints", "apiVersion": "v1", "metadata": {"name": "web"}}),
            ),
            ex(
                "GET",
                "/apis/gateway.networking.k8s.io/v1",
                404,
                status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ),
            ),
        ],
    );
    let mut sandbox = provider
        .provision(&request(Lifetime::Session))
        .await
        .unwrap();
    let probe = |check| runbook_core::Probe::Kube(check);
    let seen = sandbox
        .probe(&probe(KubeCheck::Exists(sc("standard"))))
        .await
        .unwrap();
    assert!(seen.satisfied, "{}", seen.actual);
    let seen = sandbox
        .probe(&probe(KubeCheck::Absent(sc("fast"))))
        .await
        .unwrap();
    assert!(seen.satisfied, "{}", seen.actual);
    let endpoints = runbook_core::KubeObjectRef {
        api_version: "v1".into(),
        kind: "Endpoints".into(),
        name: "web".into(),
    };
    let seen = sandbox
        .probe(&probe(KubeCheck::Exists(endpoints)))
        .await
        .unwrap();
    assert!(seen.satisfied, "{}", seen.actual);
    // A kind the cluster does not serve is an error, never "absent".
    let gateway = runbook_core::KubeObjectRef {
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "Gateway".into(),
        name: "web".into(),
    };
    let err = sandbox
        .probe(&probe(KubeCheck::Absent(gateway)))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("does not serve kind `Gateway` in `gateway.networking.k8s.io/v1`"),
        "{err}"
    );
    sandbox.keep();
    let ns = format!("rb-{}", sandbox.id());
    let uris: Vec<String> = server.await.unwrap().into_iter().map(|s| s.uri).collect();
    assert_eq!(
        uris[1..],
        [
            "/apis/storage.k8s.io/v1".to_owned(),
            "/apis/storage.k8s.io/v1/storageclasses/standard".to_owned(),
            "/apis/storage.k8s.io/v1/storageclasses/fast".to_owned(),
            "/api/v1".to_owned(),
            format!("/api/v1/namespaces/{ns}/endpoints/web"),
            "/apis/gateway.networking.k8s.io/v1".to_owned(),
        ]
    );
}

#[tokio::test]
async fn a_busy_api_server_is_retried_within_the_checks_budget() {
    let (client, handle) = client();
    let (_dir, provider) = provider(client);
    let busy = || {
        ex(
            "GET",
            "/api/v1/namespaces/rb-",
            429,
            status(
                429,
                "TooManyRequests",
                "the server has received too many requests",
            ),
        )
    };
    let server = serve(
        handle,
        vec![
            created(),
            ex("GET", "/version", 200, version()),
            ex("GET", "/api/v1/nodes", 200, nodes(1)),
            busy(),
            ex(
                "GET",
                "/api/v1/namespaces/rb-",
                503,
                status(503, "ServiceUnavailable", "etcdserver: leader changed"),
            ),
            ex("GET", "/api/v1/namespaces/rb-", 200, pods(true)),
            ex(
                "DELETE",
                "/api/v1/namespaces/rb-",
                200,
                namespace("rb-x", "Terminating"),
            ),
            ex("GET", "/api/v1/namespaces/rb-", 404, not_found("rb-x")),
        ],
    );
    let runbook = Runbook::builder("postgres")
        .step(
            Step::new("deploy", "Deploy")
                .run("true")
                .read_only()
                .verify(
                    Check::kube(KubeCheck::PodsReady {
                        selector: "app=db".into(),
                        count: 1,
                    })
                    .within(Duration::from_secs(10))
                    .every(Duration::from_millis(50)),
                ),
        )
        .build_unchecked();
    let options = RunOptions {
        lifetime: Some(Lifetime::Ephemeral),
        ..RunOptions::default()
    };
    let outcome = run_all(&provider, runbook, options, RunMode::default())
        .await
        .unwrap();
    assert_eq!(
        outcome.report.verdict,
        Verdict::Passed,
        "{:#?}",
        outcome.report
    );
    let check = &outcome.report.steps[0].attempts[0].checks[0];
    assert_eq!(check.attempts, 3, "{check:#?}");
    assert_eq!(server.await.unwrap().len(), 8);
}

#[tokio::test]
async fn steps_get_a_namespace_scoped_token_never_the_users_credentials() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let (client, handle) = client();
    let (dir, provider) = provider(client);
    let ca = dir.path().join("ca.crt");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let kubeconfig: kube::config::Kubeconfig = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "kind-sandbox",
        "clusters": [
            {"name": "kind-sandbox", "cluster": {"server": "https://127.0.0.1:41234",
                "certificate-authority": ca.to_str().unwrap()}},
            {"name": "prod", "cluster": {"server": "https://prod.example.com"}}
        ],
        "contexts": [
            {"name": "kind-sandbox", "context": {"cluster": "kind-sandbox", "user": "kind-admin"}},
            {"name": "prod", "context": {"cluster": "prod", "user": "prod-admin"}}
        ],
        "users": [
            {"name": "kind-admin", "user": {"client-certificate-data": "Q0VSVA==",
                "client-key-data": "VVNFUi1LRVktU0VDUkVU"}},
            {"name": "prod-admin", "user": {"token": "PROD-TOKEN-SECRET"}}
        ]
    }))
    .unwrap();
    let provider = provider.kubeconfig(kubeconfig);
    let token = "eyJhbGciOiJSUzI1NiJ9.step-token.sig";
    let server = serve(
        handle,
        vec![
            created(),
            ex(
                "POST",
                "/api/v1/namespaces/rb-postgres-",
                201,
                json!({"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": "runbook-step"}}),
            ),
            ex(
                "POST",
                "/apis/rbac.authorization.k8s.io/v1/namespaces/rb-postgres-",
                201,
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                       "metadata": {"name": "runbook-step"},
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                   "kind": "ClusterRole", "name": "admin"}}),
            ),
            // The `default` ServiceAccount appears a moment after the namespace.
            ex(
                "GET",
                "/api/v1/namespaces/rb-postgres-",
                404,
                not_found("default"),
            ),
            ex(
                "GET",
                "/api/v1/namespaces/rb-postgres-",
                200,
                json!({"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": "default"}}),
            ),
            ex(
                "POST",
                "/api/v1/namespaces/rb-postgres-",
                201,
                json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                       "metadata": {"name": "runbook-step"},
                       "spec": {"audiences": ["https://kubernetes.default.svc.cluster.local"],
                                "expirationSeconds": 86400},
                       "status": {"token": token,
                                  "expirationTimestamp": "2026-11-28T10:00:00Z"}}),
            ),
        ],
    );
    let mut sandbox = provider
        .provision(&request(Lifetime::Session))
        .await
        .unwrap();
    sandbox.keep();
    let ns = format!("rb-{}", sandbox.id());
    let seen = server.await.unwrap();
    assert_eq!(
        seen[1].uri,
        format!("/api/v1/namespaces/{ns}/serviceaccounts?")
    );
    assert_eq!(seen[1].body["metadata"]["name"], "runbook-step");
    assert_eq!(
        seen[2].uri,
        format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings?")
    );
    assert_eq!(
        seen[2].body["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"})
    );
    assert_eq!(
        seen[2].body["subjects"],
        json!([{"kind": "ServiceAccount", "name": "runbook-step", "namespace": ns}])
    );
    assert_eq!(
        seen[3].uri,
        format!("/api/v1/namespaces/{ns}/serviceaccounts/default")
    );
    assert_eq!(
        seen[5].uri,
        format!("/api/v1/namespaces/{ns}/serviceaccounts/runbook-step/token?")
    );
    assert_eq!(seen[5].body["spec"]["expirationSeconds"], 86400);

    let path = dir
        .path()
        .join("local")
        .join(sandbox.id())
        .join("work/.kube/config");
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let work = std::fs::metadata(path.parent().unwrap().parent().unwrap()).unwrap();
    assert_eq!(
        meta.uid(),
        work.uid(),
        "the sandbox's user owns its kubeconfig"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    for secret in [
        "VVNFUi1LRVktU0VDUkVU",
        "Q0VSVA==",
        "PROD-TOKEN-SECRET",
        "prod.example.com",
    ] {
        assert!(
            !text.contains(secret),
            "`{secret}` leaked into the step kubeconfig: {text}"
        );
    }
    let config: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(config["users"][0]["user"], json!({"token": token}));
    assert_eq!(config["contexts"][0]["context"]["namespace"], json!(ns));
    assert_eq!(config["contexts"][0]["context"]["user"], "runbook-step");
    assert_eq!(
        config["clusters"][0]["cluster"],
        json!({"server": "https://127.0.0.1:41234",
               "certificate-authority-data":
                   "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="})
    );
}

#[tokio::test]
async fn a_namespace_the_steps_cannot_use_is_deleted_not_left_behind() {
    let (client, handle) = client();
    let (dir, provider) = provider(client);
    let provider = provider.kubeconfig(kind_kubeconfig());
    let server = serve(
        handle,
        vec![
            created(),
            ex(
                "POST",
                "/api/v1/namespaces/rb-postgres-",
                403,
                status(
                    403,
                    "Forbidden",
                    "serviceaccounts is forbidden: User \"dev\" cannot create resource",
                ),
            ),
            ex(
                "DELETE",
                "/api/v1/namespaces/rb-postgres-",
                200,
                namespace("rb-x", "Terminating"),
            ),
            ex(
                "GET",
                "/api/v1/namespaces/rb-postgres-",
                404,
                not_found("rb-x"),
            ),
        ],
    );
    let Err(err) = provider.provision(&request(Lifetime::Ephemeral)).await else {
        panic!("provisioning succeeded without a step ServiceAccount");
    };
    assert!(
        err.chain()
            .contains("cannot create the step ServiceAccount"),
        "{}",
        err.chain()
    );
    let seen = server.await.unwrap();
    assert_eq!(seen.len(), 4, "the namespace is deleted: {seen:?}");
    let left: Vec<_> = std::fs::read_dir(dir.path().join("local"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "no local state left: {left:?}");
}

#[test]
fn a_long_runbook_name_is_shortened_never_its_random_suffix() {
    let id = format!("{}-0a1b2c3d", "x".repeat(70));
    let ns = KubeProvider::namespace_of(&id);
    assert_eq!(ns.len(), 63);
    assert!(ns.ends_with("x-0a1b2c3d"), "{ns}");
    assert_eq!(
        KubeProvider::namespace_of("web-0a1b2c3d"),
        "rb-web-0a1b2c3d"
    );
}

#[tokio::test]
async fn a_runbook_name_too_long_for_labels_is_refused_before_any_request() {
    let (client, handle) = client();
    let (_dir, provider) = provider(client);
    // Nothing is served: a request would fail the test with "fewer requests" unmet.
    let server = serve(handle, Vec::new());
    let name = "a-runbook-name-of-fifty-six-characters-for-the-label-xx";
    let request = ProvisionRequest::new(name, Lifetime::Ephemeral);
    let Err(err) = provider.provision(&request).await else {
        panic!("a {}-character name was accepted", name.len());
    };
    assert!(err.to_string().contains("takes at most 40"), "{err}");
    assert!(server.await.unwrap().is_empty());
}

#[tokio::test]
async fn the_step_token_is_masked_in_everything_recorded() {
    let (client, handle) = client();
    let (_dir, provider) = provider(client);
    let provider = provider.kubeconfig(kind_kubeconfig());
    let token = "eyJhbGciOiJSUzI1NiJ9.step-token-5e3c.sig";
    let mut script = vec![created()];
    script.extend(step_credentials(false, token));
    script.extend([
        ex("GET", "/version", 200, version()),
        ex("GET", "/api/v1/nodes", 200, nodes(1)),
        ex(
            "DELETE",
            "/api/v1/namespaces/rb-",
            200,
            namespace("rb-x", "Terminating"),
        ),
        ex("GET", "/api/v1/namespaces/rb-", 404, not_found("rb-x")),
    ]);
    let server = serve(handle, script);
    let runbook = Runbook::builder("postgres")
        .step(
            Step::new("show", "A careless step prints its kubeconfig")
                .run("cat \"$KUBECONFIG\"; cat \"$KUBECONFIG\" >&2")
                .read_only()
                .verify(Check::command("grep -c runbook-step \"$KUBECONFIG\"")),
        )
        .build_unchecked();
    let options = RunOptions {
        lifetime: Some(Lifetime::Ephemeral),
        ..RunOptions::default()
    };
    let outcome = run_all(&provider, runbook, options, RunMode::default())
        .await
        .unwrap();
    let output = &outcome.report.steps[0].attempts[0].output;
    assert!(
        output.stdout.contains("\"token\": \"***\""),
        "{}",
        output.stdout
    );
    let report = serde_json::to_string(&outcome.report).unwrap();
    assert!(
        !report.contains("step-token-5e3c"),
        "the token leaked: {report}"
    );
    assert_eq!(server.await.unwrap().len(), 9);
}

/// The exchanges that set up a sandbox's step credentials (an existing account and
/// binding answer 409, as on a resume), ending with `token`.
fn step_credentials(conflict: bool, token: &str) -> Vec<Exchange> {
    let created = if conflict { 409 } else { 201 };
    let body = |kind: &str| {
        if conflict {
            status(
                409,
                "AlreadyExists",
                &format!("{kind} \"runbook-step\" already exists"),
            )
        } else {
            json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": "runbook-step"}})
        }
    };
    vec![
        ex(
            "POST",
            "/api/v1/namespaces/",
            created,
            body("ServiceAccount"),
        ),
        ex(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/",
            created,
            if conflict {
                body("RoleBinding")
            } else {
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                       "metadata": {"name": "runbook-step"},
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                   "kind": "ClusterRole", "name": "admin"}})
            },
        ),
        ex(
            "GET",
            "/api/v1/namespaces/",
            200,
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
        ),
        ex(
            "POST",
            "/api/v1/namespaces/",
            201,
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                   "spec": {"audiences": []}, "status": {"token": token,
                   "expirationTimestamp": "2026-11-28T10:00:00Z"}}),
        ),
    ]
}

#[tokio::test]
async fn a_link_planted_at_the_step_kubeconfig_is_replaced_on_resume_never_followed() {
    use std::os::unix::fs::PermissionsExt;
    let (client, handle) = client();
    let (dir, provider) = provider(client);
    let provider = provider.kubeconfig(kind_kubeconfig());
    let mut script = vec![created()];
    script.extend(step_credentials(false, "first-token"));
    script.push(ex(
        "GET",
        "/api/v1/namespaces?",
        200,
        json!({"apiVersion": "v1", "kind": "NamespaceList", "metadata": {},
               "items": [{"metadata": {"name": "rb-found-by-label"}}]}),
    ));
    script.extend(step_credentials(true, "second-token"));
    let server = serve(handle, script);
    let mut sandbox = provider
        .provision(&request(Lifetime::Persistent))
        .await
        .unwrap();
    let id = sandbox.id().to_owned();
    sandbox.keep();
    drop(sandbox);
    // A hostile step replaced its kubeconfig with a link to a file only root may write.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "root's data\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.path().join("local").join(&id).join("work/.kube/config");
    std::fs::remove_file(&config).unwrap();
    std::os::unix::fs::symlink(&victim, &config).unwrap();

    let mut resumed = provider.resume(&id).await.unwrap();
    resumed.keep();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's data\n");
    let meta = std::fs::symlink_metadata(&config).unwrap();
    assert!(meta.file_type().is_file(), "the link is replaced by a file");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("second-token")
    );
    assert_eq!(server.await.unwrap().len(), 10);
}
