//! What a failing step leaves behind in the namespace: pod states, recent events, the
//! last lines of the logs of the containers that are not ready (and of their previous
//! instance when they restarted: a crash loop's cause is in the log of the one that died).

use std::fmt::Write;

use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, LogParams};
use kube::{Api, Client};

use super::checks::pod_ready;

const MAX_EVENTS: usize = 20;
const MAX_LOGGED_PODS: usize = 3;
const LOG_LINES: i64 = 20;
/// Bytes of log per container instance: a pod logging one huge line stays bounded.
const LOG_BYTES: i64 = 16 * 1024;

/// When an event last happened: the latest of its timestamps. Scheduler events carry
/// only `eventTime` (their `lastTimestamp` is null), repeated ones a `series`.
fn last_seen(e: &Event) -> Option<Timestamp> {
    [
        e.last_timestamp.as_ref().map(|t| t.0),
        e.event_time.as_ref().map(|t| t.0),
        e.series
            .as_ref()
            .and_then(|s| s.last_observed_time.as_ref())
            .map(|t| t.0),
        e.first_timestamp.as_ref().map(|t| t.0),
        e.metadata.creation_timestamp.as_ref().map(|t| t.0),
    ]
    .into_iter()
    .flatten()
    .max()
}

/// Collects what it can; an API error becomes a line of the text, never a failure.
pub(super) async fn collect(client: &Client, namespace: &str) -> String {
    let mut out = String::new();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut unready = Vec::new();
    match pods.list(&ListParams::default()).await {
        Ok(list) => {
            let _ = writeln!(out, "pods in {namespace}:");
            if list.items.is_empty() {
                out.push_str("  (none)\n");
            }
            for p in &list.items {
                let name = p.metadata.name.clone().unwrap_or_default();
                let status = p.status.clone().unwrap_or_default();
                let statuses = status.container_statuses.unwrap_or_default();
                let restarts: i32 = statuses.iter().map(|c| c.restart_count).sum();
                let waiting: Vec<String> = statuses
                    .iter()
                    .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
                    .collect();
                let ready = statuses.iter().filter(|c| c.ready).count();
                let _ = writeln!(
                    out,
                    "  {name}: {} ready {ready}/{} restarts {restarts}{}",
                    status.phase.unwrap_or_else(|| "Unknown".into()),
                    statuses.len(),
                    if waiting.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", waiting.join(", "))
                    }
                );
                if !pod_ready(p) {
                    // Its containers not ready (a pod not scheduled yet has none, and no logs).
                    let containers: Vec<(String, i32)> = statuses
                        .iter()
                        .filter(|c| !c.ready)
                        .map(|c| (c.name.clone(), c.restart_count))
                        .collect();
                    unready.push((name, containers));
                }
            }
        }
        Err(e) => {
            let _ = writeln!(out, "pods: cannot list them: {e}");
        }
    }
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    match events.list(&ListParams::default()).await {
        Ok(list) => {
            let mut items = list.items;
            items.sort_by_key(last_seen);
            let _ = writeln!(out, "recent events:");
            for e in items.iter().rev().take(MAX_EVENTS).rev() {
                let _ = writeln!(
                    out,
                    "  {} {} {}/{}: {}",
                    e.type_.clone().unwrap_or_default(),
                    e.reason.clone().unwrap_or_default(),
                    e.involved_object.kind.clone().unwrap_or_default(),
                    e.involved_object.name.clone().unwrap_or_default(),
                    e.message.clone().unwrap_or_default().trim()
                );
            }
        }
        Err(e) => {
            let _ = writeln!(out, "events: cannot list them: {e}");
        }
    }
    for (pod, containers) in unready.iter().take(MAX_LOGGED_PODS) {
        for (container, restarts) in containers {
            let instances: &[bool] = if *restarts > 0 {
                &[true, false]
            } else {
                &[false]
            };
            for &previous in instances {
                let params = LogParams {
                    container: Some(container.clone()),
                    tail_lines: Some(LOG_LINES),
                    limit_bytes: Some(LOG_BYTES),
                    previous,
                    ..LogParams::default()
                };
                let which = if previous {
                    "previous instance of "
                } else {
                    ""
                };
                match pods.logs(pod, &params).await {
                    Ok(log) => {
                        let _ = writeln!(
                            out,
                            "last {LOG_LINES} log lines of {which}{pod}/{container}:"
                        );
                        for line in log.lines() {
                            let _ = writeln!(out, "  {line}");
                        }
                    }
                    Err(e) => {
                        let _ = writeln!(out, "logs of {which}{pod}/{container}: {e}");
                    }
                }
            }
        }
    }
    out
}
