//! Typed Kubernetes checks, observed through the API.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use std::collections::HashMap;
use std::sync::Mutex;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::discovery::{self, Scope};
use kube::{Api, Client};
use runbook_core::{KubeCheck, KubeObjectRef};

use super::api_error;
use crate::{Observation, Result};

fn seen(satisfied: bool, actual: impl Into<String>) -> Observation {
    Observation {
        satisfied,
        actual: actual.into(),
    }
}

/// Whether a pod is Running with its Ready condition True.
pub(super) fn pod_ready(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && status
            .conditions
            .as_ref()
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Kinds resolved through API discovery (plural, scope, group version), kept for the
/// sandbox's life: one discovery request per kind, however often a check retries.
#[derive(Default)]
pub(super) struct Discovered(Mutex<HashMap<(String, String), (ApiResource, Scope)>>);

impl Discovered {
    /// The API for `r`'s kind, cluster-wide for a cluster-scoped kind (StorageClass,
    /// ClusterRole, a cluster-scoped CRD). A kind the server does not serve is an error:
    /// reading it as "absent" would let `absent` pass by itself.
    async fn api(
        &self,
        client: &Client,
        namespace: &str,
        r: &KubeObjectRef,
    ) -> Result<Api<DynamicObject>> {
        let key = (r.api_version.clone(), r.kind.clone());
        let known = self.0.lock().ok().and_then(|m| m.get(&key).cloned());
        let (resource, scope) = match known {
            Some(found) => found,
            None => {
                let (group, version) = r
                    .api_version
                    .rsplit_once('/')
                    .unwrap_or(("", &r.api_version));
                let gvk = GroupVersionKind::gvk(group, version, &r.kind);
                let (resource, caps) = discovery::pinned_kind(client, &gvk).await.map_err(|e| {
                    api_error(
                        &format!(
                            "the cluster does not serve kind `{}` in `{}` (API discovery)",
                            r.kind, r.api_version
                        ),
                        e,
                    )
                })?;
                let found = (resource, caps.scope);
                if let Ok(mut m) = self.0.lock() {
                    m.insert(key, found.clone());
                }
                found
            }
        };
        Ok(match scope {
            Scope::Cluster => Api::all_with(client.clone(), &resource),
            Scope::Namespaced => Api::namespaced_with(client.clone(), namespace, &resource),
        })
    }
}

fn missing(kind: &str, name: &str) -> Observation {
    seen(false, format!("{kind}/{name} does not exist"))
}

/// An EndpointSlice endpoint is ready unless its `ready` condition says `false`: the
/// API defines a null `ready` as "unknown, treat as ready".
fn endpoint_ready(endpoint: &Endpoint) -> bool {
    endpoint
        .conditions
        .as_ref()
        .and_then(|c| c.ready)
        .unwrap_or(true)
}

// The three rollout verdicts follow `kubectl rollout status` (kubectl's
// `polymorphichelpers/rollout_status.go`) test for test and message for message, so
// the in-process check and the rendered `kubectl rollout status` agree.

/// Whether a Deployment finished rolling out, judged as `kubectl rollout status` does.
fn deployment_rollout(name: &str, d: &Deployment) -> Observation {
    let st = d.status.clone().unwrap_or_default();
    if d.metadata.generation.unwrap_or(0) > st.observed_generation.unwrap_or(0) {
        return seen(
            false,
            "Waiting for deployment spec update to be observed...",
        );
    }
    let timed_out = st.conditions.iter().flatten().any(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if timed_out {
        return seen(
            false,
            format!("deployment \"{name}\" exceeded its progress deadline"),
        );
    }
    let updated = st.updated_replicas.unwrap_or(0);
    let replicas = st.replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    let wait = |what: String| {
        seen(
            false,
            format!("Waiting for deployment \"{name}\" rollout to finish: {what}..."),
        )
    };
    let wanted = d.spec.as_ref().and_then(|s| s.replicas);
    if let Some(want) = wanted.filter(|&want| updated < want) {
        return wait(format!(
            "{updated} out of {want} new replicas have been updated"
        ));
    }
    if replicas > updated {
        return wait(format!(
            "{} old replicas are pending termination",
            replicas - updated
        ));
    }
    if available < updated {
        return wait(format!(
            "{available} of {updated} updated replicas are available"
        ));
    }
    seen(
        true,
        format!("deployment \"{name}\" successfully rolled out"),
    )
}

/// Whether a StatefulSet finished rolling out, judged as `kubectl rollout status` does.
fn statefulset_rollout(s: &StatefulSet) -> Observation {
    let spec = s.spec.clone().unwrap_or_default();
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    if strategy
        .type_
        .as_deref()
        .is_some_and(|t| t != "RollingUpdate")
    {
        return seen(
            false,
            "rollout status is only available for RollingUpdate strategy type",
        );
    }
    let st = s.status.clone().unwrap_or_default();
    let observed = st.observed_generation.unwrap_or(0);
    if observed == 0 || s.metadata.generation.unwrap_or(0) > observed {
        return seen(
            false,
            "Waiting for statefulset spec update to be observed...",
        );
    }
    let replicas = spec.replicas.unwrap_or(1);
    let ready = st.ready_replicas.unwrap_or(0);
    if ready < replicas {
        return seen(
            false,
            format!("Waiting for {} pods to be ready...", replicas - ready),
        );
    }
    let partition = strategy
        .rolling_update
        .and_then(|r| r.partition)
        .unwrap_or(0);
    let updated = st.updated_replicas.unwrap_or(0);
    if partition > 0 {
        let want = replicas - partition;
        if updated < want {
            return seen(
                false,
                format!(
                    "Waiting for partitioned roll out to finish: {updated} out of {want} new pods have been updated..."
                ),
            );
        }
        return seen(
            true,
            format!("partitioned roll out complete: {updated} new pods have been updated..."),
        );
    }
    let revision = st.update_revision.clone().unwrap_or_default();
    if st.update_revision != st.current_revision {
        return seen(
            false,
            format!(
                "waiting for statefulset rolling update to complete {updated} pods at revision {revision}..."
            ),
        );
    }
    seen(
        true,
        format!(
            "statefulset rolling update complete {} pods at revision {revision}...",
            st.current_replicas.unwrap_or(0)
        ),
    )
}

/// Whether a DaemonSet finished rolling out, judged as `kubectl rollout status` does.
fn daemonset_rollout(name: &str, d: &DaemonSet) -> Observation {
    let strategy = d.spec.as_ref().and_then(|s| s.update_strategy.clone());
    if strategy
        .and_then(|s| s.type_)
        .is_some_and(|t| t != "RollingUpdate")
    {
        return seen(
            false,
            "rollout status is only available for RollingUpdate strategy type",
        );
    }
    let st = d.status.clone().unwrap_or_default();
    if d.metadata.generation.unwrap_or(0) > st.observed_generation.unwrap_or(0) {
        return seen(
            false,
            "Waiting for daemon set spec update to be observed...",
        );
    }
    let desired = st.desired_number_scheduled;
    let updated = st.updated_number_scheduled.unwrap_or(0);
    let available = st.number_available.unwrap_or(0);
    let wait = |what: String| {
        seen(
            false,
            format!("Waiting for daemon set \"{name}\" rollout to finish: {what}..."),
        )
    };
    if updated < desired {
        return wait(format!(
            "{updated} out of {desired} new pods have been updated"
        ));
    }
    if available < desired {
        return wait(format!(
            "{available} of {desired} updated pods are available"
        ));
    }
    seen(
        true,
        format!("daemon set \"{name}\" successfully rolled out"),
    )
}

/// Observes `check` in `namespace` once; the engine retries it with its policy.
pub(super) async fn observe(
    client: &Client,
    namespace: &str,
    discovered: &Discovered,
    check: &KubeCheck,
) -> Result<Observation> {
    Ok(match check {
        KubeCheck::PodsReady { selector, count } => {
            let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let list = pods
                .list(&ListParams::default().labels(selector))
                .await
                .map_err(|e| api_error("cannot list pods", e))?;
            let ready = list.items.iter().filter(|p| pod_ready(p)).count();
            let states: Vec<String> = list
                .items
                .iter()
                .map(|p| {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    let phase = p
                        .status
                        .as_ref()
                        .and_then(|s| s.phase.clone())
                        .unwrap_or_else(|| "Unknown".into());
                    format!(
                        "{name}: {phase}{}",
                        if pod_ready(p) { ", Ready" } else { "" }
                    )
                })
                .collect();
            seen(
                ready >= *count as usize,
                format!(
                    "{ready} of {} pod(s) matching `{selector}` Running and Ready ({})",
                    list.items.len(),
                    states.join("; ")
                ),
            )
        }
        KubeCheck::RolloutComplete { kind, name } => match kind.as_str() {
            "Deployment" => {
                let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
                let found = api
                    .get_opt(name)
                    .await
                    .map_err(|e| api_error("cannot read the Deployment", e))?;
                found.map_or_else(|| missing(kind, name), |d| deployment_rollout(name, &d))
            }
            "StatefulSet" => {
                let api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
                let found = api
                    .get_opt(name)
                    .await
                    .map_err(|e| api_error("cannot read the StatefulSet", e))?;
                found.map_or_else(|| missing(kind, name), |s| statefulset_rollout(&s))
            }
            "DaemonSet" => {
                let api: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
                let found = api
                    .get_opt(name)
                    .await
                    .map_err(|e| api_error("cannot read the DaemonSet", e))?;
                found.map_or_else(|| missing(kind, name), |d| daemonset_rollout(name, &d))
            }
            other => seen(
                false,
                format!(
                    "rollout of kind `{other}` is not supported (use Deployment, StatefulSet or DaemonSet)"
                ),
            ),
        },
        KubeCheck::ServiceEndpoints { name } => {
            let api: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
            let list = api
                .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={name}")))
                .await
                .map_err(|e| api_error("cannot list EndpointSlices", e))?;
            let ready = list
                .items
                .iter()
                .flat_map(|s| s.endpoints.iter())
                .filter(|e| endpoint_ready(e))
                .count();
            seen(
                ready > 0,
                format!("Service/{name} has {ready} ready endpoint(s)"),
            )
        }
        KubeCheck::Exists(r) => {
            let found = discovered
                .api(client, namespace, r)
                .await?
                .get_opt(&r.name)
                .await
                .map_err(|e| api_error(&format!("cannot read {}/{}", r.kind, r.name), e))?;
            seen(
                found.is_some(),
                format!(
                    "{}/{} {}",
                    r.kind,
                    r.name,
                    if found.is_some() {
                        "exists"
                    } else {
                        "does not exist"
                    }
                ),
            )
        }
        KubeCheck::Absent(r) => {
            let found = discovered
                .api(client, namespace, r)
                .await?
                .get_opt(&r.name)
                .await
                .map_err(|e| api_error(&format!("cannot read {}/{}", r.kind, r.name), e))?;
            seen(
                found.is_none(),
                format!(
                    "{}/{} {}",
                    r.kind,
                    r.name,
                    if found.is_some() {
                        "still exists"
                    } else {
                        "does not exist"
                    }
                ),
            )
        }
    })
}
