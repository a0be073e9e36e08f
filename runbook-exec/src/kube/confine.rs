//! Step confinement: the steps' kubeconfig holds a short-lived token of a ServiceAccount
//! that is `admin` in the sandbox namespace and nothing else, never the user's own
//! credentials (which on a kind cluster are cluster-admin).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use kube::api::{ObjectMeta, PostParams};
use kube::config::Kubeconfig;
use kube::{Api, Client};
use serde_json::json;

use super::{MANAGED_BY, api_error, is_status};
use crate::{ExecError, Result};

/// The ServiceAccount the steps act as, in each sandbox namespace.
pub const STEP_ACCOUNT: &str = "runbook-step";

/// How long a step token lives: the API server's minimum is 10 minutes; a run that
/// outlives it is resumed, which requests a fresh one.
pub(super) fn token_lifetime(expire_after: Duration) -> i64 {
    expire_after.as_secs().clamp(600, 24 * 3600) as i64
}

fn meta(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(BTreeMap::from([(
            MANAGED_BY.to_owned(),
            "runbook".to_owned(),
        )])),
        ..ObjectMeta::default()
    }
}

/// Creates (or finds) the step ServiceAccount and its `admin` RoleBinding in
/// `namespace`, then requests a token for it that expires after `seconds`.
pub(super) async fn step_token(client: &Client, namespace: &str, seconds: i64) -> Result<String> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let account = ServiceAccount {
        metadata: meta(STEP_ACCOUNT, namespace),
        ..ServiceAccount::default()
    };
    match accounts.create(&PostParams::default(), &account).await {
        Ok(_) => {}
        Err(e) if is_status(&e, 409) => {} // a resumed sandbox has it already
        Err(e) => return Err(api_error("cannot create the step ServiceAccount", e)),
    }
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), namespace);
    let binding = RoleBinding {
        metadata: meta(STEP_ACCOUNT, namespace),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "admin".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: STEP_ACCOUNT.into(),
            namespace: Some(namespace.to_owned()),
            ..Subject::default()
        }]),
    };
    match bindings.create(&PostParams::default(), &binding).await {
        Ok(_) => {}
        Err(e) if is_status(&e, 409) => {}
        Err(e) => {
            return Err(api_error(
                "cannot bind the step ServiceAccount to `admin`",
                e,
            ));
        }
    }
    wait_for_default_account(&accounts).await?;
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(seconds),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let answer = accounts
        .create_token_request(STEP_ACCOUNT, &PostParams::default(), &request)
        .await
        .map_err(|e| api_error("cannot request a step token", e))?;
    answer
        .status
        .map(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ExecError::Provider("the API server returned no step token".into()))
}

/// Waits (bounded) for the namespace's `default` ServiceAccount, which a controller
/// creates shortly after the namespace: a step's first pod is refused (403) without it.
async fn wait_for_default_account(accounts: &Api<ServiceAccount>) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match accounts.get_opt("default").await {
            Ok(Some(_)) => return Ok(()),
            Ok(None) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(None) => {
                return Err(ExecError::Provider(
                    "the namespace's `default` ServiceAccount did not appear within 20 s: is the \
                     cluster's controller manager running?"
                        .into(),
                ));
            }
            Err(e) => return Err(api_error("cannot read the `default` ServiceAccount", e)),
        }
    }
}

/// A kubeconfig for the steps: the cluster of `context` (server, CA, TLS name; a CA
/// file is read and inlined, the steps' user cannot read the caller's files), the step
/// token, pinned to `namespace`. No user credential of `base` is copied.
pub(super) fn step_kubeconfig(
    base: &Kubeconfig,
    context: &str,
    namespace: &str,
    token: &str,
) -> Result<Vec<u8>> {
    let missing = |what: &str| {
        ExecError::Provider(format!(
            "the kubeconfig has no {what} for context `{context}`"
        ))
    };
    let cluster_name = base
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .ok_or_else(|| missing("context"))?;
    let cluster = base
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| missing("cluster"))?;
    let mut entry = serde_json::Map::new();
    entry.insert(
        "server".into(),
        json!(cluster.server.clone().ok_or_else(|| missing("server"))?),
    );
    if let Some(data) = &cluster.certificate_authority_data {
        entry.insert("certificate-authority-data".into(), json!(data));
    } else if let Some(path) = &cluster.certificate_authority {
        let pem = std::fs::read(path).map_err(|e| {
            ExecError::Provider(format!("cannot read the cluster CA `{path}`: {e}"))
        })?;
        entry.insert(
            "certificate-authority-data".into(),
            json!(BASE64_STANDARD.encode(&pem)),
        );
    }
    for (key, value) in [
        (
            "tls-server-name",
            cluster.tls_server_name.as_ref().map(|v| json!(v)),
        ),
        ("proxy-url", cluster.proxy_url.as_ref().map(|v| json!(v))),
        (
            "insecure-skip-tls-verify",
            cluster.insecure_skip_tls_verify.map(|v| json!(v)),
        ),
    ] {
        if let Some(value) = value {
            entry.insert(key.into(), value);
        }
    }
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": context,
        "clusters": [{"name": cluster_name, "cluster": entry}],
        "users": [{"name": STEP_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": context, "context": {
            "cluster": cluster_name, "user": STEP_ACCOUNT, "namespace": namespace
        }}],
    });
    serde_json::to_vec_pretty(&config)
        .map_err(|e| ExecError::Provider(format!("cannot write the step kubeconfig: {e}")))
}
