//! What several commands share: the error a command returns ([`Failure`]), the provider,
//! a runbook loaded only when it lints clean, the lessons library, and writing files
//! without following a link planted there.

use std::path::{Path, PathBuf};

use runbook::exec::{LocalProvider, Provider};
use runbook::findings::Finding;
use runbook::{ParseError, Runbook};

use crate::cli::{ProviderArg, SandboxArgs};

/// An error for the user: what went wrong and what to do. Never a panic, never Debug.
pub struct Failure(pub String);

/// The error and its causes, each once: `cannot write `x`: Permission denied (os error 13)`.
impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Self {
        let mut text = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        Failure(text)
    }
}

/// The provider `args` choose, with the network cut when `isolate_network`.
pub async fn provider(
    args: &SandboxArgs,
    isolate_network: bool,
) -> Result<Box<dyn Provider>, Failure> {
    if isolate_network && args.provider == ProviderArg::Container {
        return Err(Failure(
            "--isolate-network is the local provider's: a container sandbox has no network but \
             loopback unless --network private asks for one; drop the flag"
                .into(),
        ));
    }
    if isolate_network && args.provider == ProviderArg::Kube {
        return Err(Failure(
            "--isolate-network cuts the steps off from the Kubernetes API server: the kube provider's \
             sandbox is its namespace; drop the flag"
                .into(),
        ));
    }
    let (which, allow_contexts) = (args.provider, &args.allow_contexts);
    let local = local_provider(args)?.isolate_network(isolate_network);
    Ok(match which {
        ProviderArg::Local => Box::new(local),
        #[cfg(feature = "kube")]
        ProviderArg::Kube => kube_at(local, allow_contexts, None).await?,
        #[cfg(not(feature = "kube"))]
        ProviderArg::Kube => {
            let _ = allow_contexts;
            return Err(Failure(
                "this build has no Kubernetes provider: build runbook with its `kube` feature"
                    .into(),
            ));
        }
        #[cfg(feature = "container")]
        ProviderArg::Container => Box::new(container_provider(&args.container, local).await?),
        #[cfg(not(feature = "container"))]
        ProviderArg::Container => {
            return Err(Failure(
                "this build has no container provider: build runbook with its `container` feature"
                    .into(),
            ));
        }
    })
}

/// The local provider at the state root `args` give, passing the variables they keep.
fn local_provider(args: &SandboxArgs) -> Result<LocalProvider, Failure> {
    let local = match args.state_dir.as_deref() {
        Some(dir) => LocalProvider::with_root(dir),
        None => LocalProvider::new()?,
    };
    Ok(args
        .keep_env
        .iter()
        .fold(local, |local, name| local.keep_env(name)))
}

/// The kube provider at `context` (the kubeconfig's current one when `None`), which must
/// be allowed as a sandbox.
#[cfg(feature = "kube")]
async fn kube_at(
    local: LocalProvider,
    allow_contexts: &[String],
    context: Option<&str>,
) -> Result<Box<dyn Provider>, Failure> {
    let provider =
        runbook::exec::KubeProvider::from_kubeconfig_context(local, allow_contexts, context)
            .await?;
    eprintln!("{}", provider.allowed_by());
    Ok(Box::new(provider))
}

/// The kube provider `args` describe, at `context` (a matrix target's).
pub async fn kube_provider_at(
    args: &SandboxArgs,
    context: Option<&str>,
) -> Result<Box<dyn Provider>, Failure> {
    #[cfg(feature = "kube")]
    {
        kube_at(local_provider(args)?, &args.allow_contexts, context).await
    }
    #[cfg(not(feature = "kube"))]
    {
        let _ = (args, context);
        Err(Failure(
            "this build has no Kubernetes provider: build runbook with its `kube` feature".into(),
        ))
    }
}

/// The container provider `args` describe.
#[cfg(feature = "container")]
async fn container_provider(
    args: &crate::cli::ContainerArgs,
    local: LocalProvider,
) -> Result<runbook::exec::ContainerProvider, Failure> {
    let limits = runbook::SandboxLimits {
        memory: args.memory.clone(),
        pids: args.pids,
        cpus: args.cpus.clone(),
    };
    // Refused here, before anything is provisioned, in the words of the runbook's field.
    limits.memory_bytes().map_err(Failure)?;
    limits.nano_cpus().map_err(Failure)?;
    let network = match args.network {
        crate::cli::NetworkArg::None => runbook::exec::ContainerNetwork::None,
        crate::cli::NetworkArg::Private => runbook::exec::ContainerNetwork::Private,
    };
    let mut provider = runbook::exec::ContainerProvider::connect(local, args.engine.as_deref())
        .await?
        .pull(args.pull)
        .limits(limits)
        .network(network);
    if let Some(image) = &args.image {
        provider = provider.image(image);
    }
    for port in &args.publish {
        provider = provider.publish(*port);
    }
    Ok(provider)
}

// ---- runbooks and lessons ----------------------------------------------------

/// Parses and lints a file: the runbook (when it parses) and every finding, in file order.
pub fn check_file(file: &Path, lessons: &[runbook::Lesson]) -> (Option<Runbook>, Vec<Finding>) {
    match runbook::load(file) {
        Err(e) => (None, vec![Finding::parse(&e, &file.display().to_string())]),
        Ok((rb, text)) => {
            let findings = runbook::findings::of(&rb, &text, &file.display().to_string(), lessons);
            (Some(rb), findings)
        }
    }
}

/// Loads a runbook and refuses it when it does not parse or has lint errors, printing
/// them as `validate` does.
pub fn load_clean(file: &Path) -> Result<Runbook, Failure> {
    let (rb, findings) = check_file(file, &[]);
    let errors: Vec<String> = findings
        .iter()
        .filter(|f| f.is_error())
        .map(Finding::text)
        .collect();
    match rb {
        Some(rb) if errors.is_empty() => Ok(rb),
        Some(_) => Err(Failure(format!(
            "the runbook has lint errors; nothing was run:\n{}",
            errors.join("\n")
        ))),
        None => Err(Failure(format!(
            "the runbook cannot be read; nothing was run:\n{}",
            errors.join("\n")
        ))),
    }
}

/// The lessons library of `--lessons DIR`, else `$RUNBOOK_LESSONS`, else none.
pub fn lessons_dir(arg: Option<PathBuf>) -> Option<PathBuf> {
    arg.or_else(|| std::env::var_os("RUNBOOK_LESSONS").map(PathBuf::from))
        .filter(|p| !p.as_os_str().is_empty())
}

/// The lessons of that library (none when no library is given).
pub fn load_lessons(arg: Option<PathBuf>) -> Result<Vec<runbook::Lesson>, Failure> {
    match lessons_dir(arg) {
        None => Ok(Vec::new()),
        Some(dir) => {
            // A misspelt path must not look like an empty library.
            if !dir.exists() {
                eprintln!(
                    "warning: the lessons library {} does not exist: no lesson is applied",
                    dir.display()
                );
            }
            runbook::load_lessons(&dir).map_err(|e| parse_failure(&e))
        }
    }
}

/// A parse error with its help line, as `validate` prints it.
pub fn parse_failure(e: &ParseError) -> Failure {
    Failure(format!("{e}\n    help: {}", e.help))
}

// ---- writing files ------------------------------------------------------------

/// Refuses a path that exists and is not a regular file: a symbolic link planted there
/// would have root write wherever it points.
pub fn refuse_link(path: &Path) -> Result<(), Failure> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.is_file() => Err(Failure(format!(
            "`{}` is {}: it is not written through; remove it",
            path.display(),
            if m.file_type().is_symlink() {
                "a symbolic link"
            } else {
                "not a regular file"
            }
        ))),
        _ => Ok(()),
    }
}

/// Writes `text` to `path` without following a link there: into a new file beside it
/// (`create_new` never follows one), then renamed over it (which replaces a link planted
/// meanwhile instead of writing through it).
pub fn write_no_follow(path: &Path, text: &str) -> Result<(), Failure> {
    use std::io::Write;
    refuse_link(path)?;
    let name = path
        .file_name()
        .map_or_else(|| "evidence".into(), |n| n.to_string_lossy().into_owned());
    let partial = path.with_file_name(format!(".{name}.{}.partial", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&partial, path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        Failure(format!("cannot write `{}`: {e}", path.display()))
    })
}

/// Writes a file that must not exist yet.
pub fn write_new(path: &Path, text: &str) -> Result<(), Failure> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| Failure(format!("cannot write {}: {e}", path.display())))
}
