//! Kubernetes APIs removed by release, from the Kubernetes deprecated API migration guide.

/// One removed `apiVersion`/`kind` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemovedApi {
    /// The removed group/version.
    pub api_version: &'static str,
    /// The kind served by it.
    pub kind: &'static str,
    /// The Kubernetes minor version (1.x) that stopped serving it.
    pub removed_in: u64,
    /// What to use instead.
    pub replacement: &'static str,
}

macro_rules! removed {
    ($($api:literal $kind:literal $minor:literal $repl:literal;)*) => {
        &[$(RemovedApi { api_version: $api, kind: $kind, removed_in: $minor, replacement: $repl }),*]
    };
}

/// The removals, oldest first.
pub const REMOVED_APIS: &[RemovedApi] = removed! {
    "extensions/v1beta1" "Deployment" 16 "apps/v1";
    "apps/v1beta1" "Deployment" 16 "apps/v1";
    "apps/v1beta2" "Deployment" 16 "apps/v1";
    "extensions/v1beta1" "DaemonSet" 16 "apps/v1";
    "apps/v1beta2" "DaemonSet" 16 "apps/v1";
    "extensions/v1beta1" "ReplicaSet" 16 "apps/v1";
    "apps/v1beta1" "ReplicaSet" 16 "apps/v1";
    "apps/v1beta2" "ReplicaSet" 16 "apps/v1";
    "apps/v1beta1" "StatefulSet" 16 "apps/v1";
    "apps/v1beta2" "StatefulSet" 16 "apps/v1";
    "extensions/v1beta1" "NetworkPolicy" 16 "networking.k8s.io/v1";
    "extensions/v1beta1" "PodSecurityPolicy" 16 "policy/v1beta1 (itself removed in 1.25: use Pod Security Admission)";
    "extensions/v1beta1" "Ingress" 22 "networking.k8s.io/v1";
    "networking.k8s.io/v1beta1" "Ingress" 22 "networking.k8s.io/v1";
    "networking.k8s.io/v1beta1" "IngressClass" 22 "networking.k8s.io/v1";
    "admissionregistration.k8s.io/v1beta1" "MutatingWebhookConfiguration" 22 "admissionregistration.k8s.io/v1";
    "admissionregistration.k8s.io/v1beta1" "ValidatingWebhookConfiguration" 22 "admissionregistration.k8s.io/v1";
    "apiextensions.k8s.io/v1beta1" "CustomResourceDefinition" 22 "apiextensions.k8s.io/v1";
    "apiregistration.k8s.io/v1beta1" "APIService" 22 "apiregistration.k8s.io/v1";
    "authentication.k8s.io/v1beta1" "TokenReview" 22 "authentication.k8s.io/v1";
    "authorization.k8s.io/v1beta1" "SubjectAccessReview" 22 "authorization.k8s.io/v1";
    "authorization.k8s.io/v1beta1" "LocalSubjectAccessReview" 22 "authorization.k8s.io/v1";
    "authorization.k8s.io/v1beta1" "SelfSubjectAccessReview" 22 "authorization.k8s.io/v1";
    "certificates.k8s.io/v1beta1" "CertificateSigningRequest" 22 "certificates.k8s.io/v1";
    "coordination.k8s.io/v1beta1" "Lease" 22 "coordination.k8s.io/v1";
    "rbac.authorization.k8s.io/v1beta1" "ClusterRole" 22 "rbac.authorization.k8s.io/v1";
    "rbac.authorization.k8s.io/v1beta1" "ClusterRoleBinding" 22 "rbac.authorization.k8s.io/v1";
    "rbac.authorization.k8s.io/v1beta1" "Role" 22 "rbac.authorization.k8s.io/v1";
    "rbac.authorization.k8s.io/v1beta1" "RoleBinding" 22 "rbac.authorization.k8s.io/v1";
    "scheduling.k8s.io/v1beta1" "PriorityClass" 22 "scheduling.k8s.io/v1";
    "storage.k8s.io/v1beta1" "CSIDriver" 22 "storage.k8s.io/v1";
    "storage.k8s.io/v1beta1" "CSINode" 22 "storage.k8s.io/v1";
    "storage.k8s.io/v1beta1" "StorageClass" 22 "storage.k8s.io/v1";
    "storage.k8s.io/v1beta1" "VolumeAttachment" 22 "storage.k8s.io/v1";
    "batch/v1beta1" "CronJob" 25 "batch/v1";
    "discovery.k8s.io/v1beta1" "EndpointSlice" 25 "discovery.k8s.io/v1";
    "events.k8s.io/v1beta1" "Event" 25 "events.k8s.io/v1";
    "autoscaling/v2beta1" "HorizontalPodAutoscaler" 25 "autoscaling/v2";
    "policy/v1beta1" "PodDisruptionBudget" 25 "policy/v1";
    "policy/v1beta1" "PodSecurityPolicy" 25 "Pod Security Admission (PodSecurityPolicy was removed)";
    "node.k8s.io/v1beta1" "RuntimeClass" 25 "node.k8s.io/v1";
    "flowcontrol.apiserver.k8s.io/v1beta1" "FlowSchema" 26 "flowcontrol.apiserver.k8s.io/v1";
    "flowcontrol.apiserver.k8s.io/v1beta1" "PriorityLevelConfiguration" 26 "flowcontrol.apiserver.k8s.io/v1";
    "autoscaling/v2beta2" "HorizontalPodAutoscaler" 26 "autoscaling/v2";
    "storage.k8s.io/v1beta1" "CSIStorageCapacity" 27 "storage.k8s.io/v1";
    "flowcontrol.apiserver.k8s.io/v1beta2" "FlowSchema" 29 "flowcontrol.apiserver.k8s.io/v1";
    "flowcontrol.apiserver.k8s.io/v1beta2" "PriorityLevelConfiguration" 29 "flowcontrol.apiserver.k8s.io/v1";
    "flowcontrol.apiserver.k8s.io/v1beta3" "FlowSchema" 32 "flowcontrol.apiserver.k8s.io/v1";
    "flowcontrol.apiserver.k8s.io/v1beta3" "PriorityLevelConfiguration" 32 "flowcontrol.apiserver.k8s.io/v1";
};

/// The removal that applies to `api_version`/`kind` on Kubernetes 1.`minor`, if any.
pub fn removed_api(api_version: &str, kind: &str, minor: u64) -> Option<&'static RemovedApi> {
    REMOVED_APIS
        .iter()
        .find(|r| r.api_version == api_version && r.kind == kind && minor >= r.removed_in)
}

/// A manifest header found in a YAML text: `apiVersion` and `kind` of one document,
/// with the 1-based line of its `apiVersion`.
pub fn manifest_headers(text: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    let (mut api, mut kind, mut line_of_api) = (None, None, 0);
    let mut flush = |api: &mut Option<String>, kind: &mut Option<String>, line: usize| {
        if let (Some(a), Some(k)) = (api.take(), kind.take()) {
            out.push((a, k, line));
        }
    };
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("---") {
            flush(&mut api, &mut kind, line_of_api);
            continue;
        }
        let value = |key: &str| {
            line.strip_prefix(key).map(|v| {
                v.split('#')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .trim_matches(['"', '\''])
                    .to_owned()
            })
        };
        if let Some(v) = value("apiVersion:") {
            api = Some(v);
            line_of_api = n + 1;
        } else if let Some(v) = value("kind:") {
            kind = Some(v);
        }
    }
    flush(&mut api, &mut kind, line_of_api);
    out
}
