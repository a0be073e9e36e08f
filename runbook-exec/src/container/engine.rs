//! Finding and reaching the container engine: Docker's or Podman's Docker-compatible
//! service, on a Unix socket; its errors in plain words.

use std::path::{Path, PathBuf};

use bollard::Docker;

use crate::{ExecError, Result};

/// Where the engine listens, and who said so (for errors and the report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSocket {
    /// The socket's path.
    pub path: PathBuf,
    /// `--engine`, `DOCKER_HOST`, `CONTAINER_HOST` or `the default socket`.
    pub source: String,
}

/// The engine's socket: `explicit` (a path or `unix://PATH`), else `DOCKER_HOST`, else
/// `CONTAINER_HOST` (Podman's), else the first of the usual sockets that exists
/// (`/var/run/docker.sock`, `/run/podman/podman.sock`, and under `$XDG_RUNTIME_DIR`
/// Podman's and Docker's rootless ones). Only Unix sockets: an engine on plain TCP is
/// root for anyone who reaches the port.
pub fn locate(explicit: Option<&str>) -> Result<EngineSocket> {
    let given = explicit
        .map(|e| (e.to_owned(), "--engine".to_owned()))
        .or_else(|| var("DOCKER_HOST").map(|v| (v, "DOCKER_HOST".to_owned())))
        .or_else(|| var("CONTAINER_HOST").map(|v| (v, "CONTAINER_HOST".to_owned())));
    if let Some((address, source)) = given {
        let path = match address.strip_prefix("unix://") {
            Some(path) => path.to_owned(),
            None if address.starts_with('/') => address.clone(),
            None => {
                return Err(ExecError::Provider(format!(
                    "the container engine address `{address}` (from {source}) is not a Unix socket: \
                     give `unix:///path/to/docker.sock` (an engine on TCP or SSH is not supported)"
                )));
            }
        };
        return Ok(EngineSocket {
            path: path.into(),
            source,
        });
    }
    let mut candidates: Vec<PathBuf> = vec![
        "/var/run/docker.sock".into(),
        "/run/podman/podman.sock".into(),
    ];
    if let Some(runtime) = var("XDG_RUNTIME_DIR") {
        candidates.push(Path::new(&runtime).join("podman/podman.sock"));
        candidates.push(Path::new(&runtime).join("docker.sock"));
    }
    candidates
        .iter()
        .find(|p| p.exists())
        .map(|p| EngineSocket {
            path: p.clone(),
            source: "the default socket".into(),
        })
        .ok_or_else(|| {
            ExecError::Provider(format!(
                "no container engine found: none of {} exists. Start Docker, or Podman's service \
                 (`podman system service --time=0 unix:///run/podman/podman.sock`), or give its \
                 socket with --engine or DOCKER_HOST",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A client of the engine at `socket`, speaking the newest API version both know.
pub async fn connect(socket: &EngineSocket) -> Result<Docker> {
    let docker = client(socket)?;
    let unreachable = |e: bollard::errors::Error| ExecError::EngineUnreachable {
        engine: format!("{} (from {})", socket.path.display(), socket.source),
        why: plain(&e),
    };
    docker.ping().await.map_err(unreachable)?;
    docker.negotiate_version().await.map_err(unreachable)
}

/// A client without a round trip (for cleanup from a thread of its own).
pub(super) fn client(socket: &EngineSocket) -> Result<Docker> {
    // Requests are bounded (a stalled engine cannot hold teardown forever); a command's
    // output stream is not (its own timeout bounds it).
    Docker::connect_with_unix(
        &socket.path.to_string_lossy(),
        120,
        bollard::API_DEFAULT_VERSION,
    )
    .map_err(|e| ExecError::EngineUnreachable {
        engine: format!("{} (from {})", socket.path.display(), socket.source),
        why: plain(&e),
    })
}

/// The engine's own message, when it sent one; else the error's text.
pub(super) fn plain(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => format!("{message} (HTTP {status_code})"),
        bollard::errors::Error::SocketNotFoundError(path) => {
            format!("there is no socket at {path}")
        }
        other => other.to_string(),
    }
}

/// Whether the engine answered `code` (404: no such object, 409: conflict).
pub(super) fn is_status(e: &bollard::errors::Error, code: u16) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code, .. } if *status_code == code)
}

/// An engine error as the provider's: what was being done, then the engine's words.
pub(super) fn failed(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> ExecError {
    let what = what.into();
    move |e| ExecError::Provider(format!("{what}: {}", plain(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_that_is_not_a_unix_socket_is_refused_in_plain_words() {
        let e = locate(Some("tcp://10.0.0.1:2375")).unwrap_err().to_string();
        assert!(e.contains("is not a Unix socket"), "{e}");
        let found = locate(Some("unix:///tmp/x.sock")).unwrap();
        assert_eq!(found.path, PathBuf::from("/tmp/x.sock"));
        assert_eq!(found.source, "--engine");
        assert_eq!(
            locate(Some("/tmp/y.sock")).unwrap().path,
            PathBuf::from("/tmp/y.sock")
        );
    }
}
