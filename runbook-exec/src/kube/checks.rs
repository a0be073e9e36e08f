//! Typed Kubernetes checks, observed through the API.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
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

/// The plural resource name of a kind (`NetworkPolicy` -> `networkpolicies`).
fn plural(kind: &str) -> String {
    let lower = kind.to_lowercase();
    if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else if lower.ends_with('s') || lower.ends_with("ch") || lower.ends_with('x') {
        format!("{lower}es")
    } else {
        format!("{lower}s")
    }
}

fn dynamic_api(client: &Client, namespace: &str, r: &KubeObjectRef) -> Api<DynamicObject> {
    let (group, version) = r
        .api_version
        .rsplit_once('/')
        .unwrap_or(("", &r.api_version));
    let gvk = GroupVersionKind::gvk(group, version, &r.kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, &plural(&r.kind));
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// Observes `check` in `namespace` once; the engine retries it with its policy.
pub(super) async fn observe(
    client: &Client,
    namespace: &str,
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
                match api
                    .get_opt(name)
                    .await
                    .map_err(|e| api_error("cannot read the Deployment", e))?
                {
                    None => seen(false, format!("Deployment/{name} does not exist")),
                    Some(d) => {
                        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                        let st = d.status.unwrap_or_default();
                        let current = st.observed_generation.unwrap_or(0)
                            >= d.metadata.generation.unwrap_or(0);
                        let updated = st.updated_replicas.unwrap_or(0);
                        let available = st.available_replicas.unwrap_or(0);
                        seen(
                            current && updated == want && available == want,
                            format!(
                                "Deployment/{name}: {updated} updated, {available} available of {want}"
                            ),
                        )
                    }
                }
            }
            "StatefulSet" => {
                let api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
                match api
                    .get_opt(name)
                    .await
                    .map_err(|e| api_error("cannot read the StatefulSet", e))?
                {
                    None => seen(false, format!("StatefulSet/{name} does not exist")),
                    Some(s) => {
                        let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                        let st = s.status.unwrap_or_default();
                        let ready = st.ready_replicas.unwrap_or(0);
                        let same_revision = st.current_revision == st.update_revision;
                        seen(
                            ready == want && same_revision,
                            format!("StatefulSet/{name}: {ready} ready of {want}"),
                        )
                    }
                }
            }
            other => seen(
                false,
                format!(
                    "rollout of kind `{other}` is not supported (use Deployment or StatefulSet)"
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
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
                .count();
            seen(
                ready > 0,
                format!("Service/{name} has {ready} ready endpoint(s)"),
            )
        }
        KubeCheck::Exists(r) => {
            let found = dynamic_api(client, namespace, r)
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
            let found = dynamic_api(client, namespace, r)
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

#[cfg(test)]
mod tests {
    #[test]
    fn plurals_of_common_kinds() {
        for (kind, want) in [
            ("Secret", "secrets"),
            ("NetworkPolicy", "networkpolicies"),
            ("Ingress", "ingresses"),
            ("StatefulSet", "statefulsets"),
        ] {
            assert_eq!(super::plural(kind), want);
        }
    }
}
