//! A fake Kubernetes API server, following the kube project's own testing convention
//! (`tower_test::mock::pair` with `kube::Client::new`): it serves a script of exchanges in
//! order, asserting each request's method and path. Shared by the kube provider's tests and
//! the version matrix's.
#![allow(dead_code)] // each test file uses what it needs

use http::{Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// One expected request and the response the fake API server gives.
pub struct Exchange {
    method: &'static str,
    path: String,
    status: StatusCode,
    body: Value,
}

pub fn ex(method: &'static str, path: impl Into<String>, status: u16, body: Value) -> Exchange {
    Exchange {
        method,
        path: path.into(),
        status: StatusCode::from_u16(status).unwrap(),
        body,
    }
}

/// A request as the server saw it.
#[derive(Debug)]
pub struct Seen {
    pub uri: String,
    pub body: Value,
}

/// Serves `script` in order, asserting each request's method and path; returns what it saw.
pub fn serve(mut handle: Handle, script: Vec<Exchange>) -> tokio::task::JoinHandle<Vec<Seen>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        for step in script {
            let (request, send) = handle
                .next_request()
                .await
                .expect("the provider made fewer requests than expected");
            let method = request.method().to_string();
            let uri = request.uri().to_string();
            assert_eq!(method, step.method, "request {} ({uri})", seen.len());
            assert!(
                uri.starts_with(&step.path),
                "request {}: expected {} {}, got {uri}",
                seen.len(),
                step.method,
                step.path
            );
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            seen.push(Seen { uri, body });
            // A string body is plain text, as a real server sends pod logs.
            let (kind, bytes) = match &step.body {
                Value::String(text) => ("text/plain", text.clone().into_bytes()),
                json => ("application/json", serde_json::to_vec(json).unwrap()),
            };
            let response = Response::builder()
                .status(step.status)
                .header("content-type", kind)
                .body(Body::from(bytes))
                .unwrap();
            send.send_response(response);
        }
        seen
    })
}

pub fn client() -> (kube::Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), handle)
}

pub fn namespace(name: &str, phase: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "status": {"phase": phase}})
}

pub fn not_found(name: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
           "message": format!("namespaces \"{name}\" not found")})
}

pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": message})
}

/// The API server's answer to the sandbox namespace's creation.
pub fn created() -> Exchange {
    ex(
        "POST",
        "/api/v1/namespaces?",
        201,
        namespace("rb-x", "Active"),
    )
}

pub fn version() -> Value {
    json!({"major": "1", "minor": "29", "gitVersion": "v1.29.2", "gitCommit": "x", "gitTreeState": "clean",
           "buildDate": "2024-01-01T00:00:00Z", "goVersion": "go1.21", "compiler": "gc", "platform": "linux/amd64"})
}

pub fn nodes(n: usize) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"metadata": {"name": format!("node-{i}")}}))
        .collect();
    json!({"apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": items})
}

pub fn pods(ready: bool) -> Value {
    let (phase, cond) = if ready {
        ("Running", "True")
    } else {
        ("Pending", "False")
    };
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [{
        "metadata": {"name": "db-postgresql-0", "labels": {"app": "db"}},
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": cond}]}
    }]})
}
