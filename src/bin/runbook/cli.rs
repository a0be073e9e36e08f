//! The command line as clap sees it: the commands, their flags and value types.
//!
//! A command's about line is the doc comment on its `Command` variant; the structs the
//! variants carry have none, so nothing competes with it in `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use runbook::Lifetime;

#[derive(Parser)]
#[command(
    name = "runbook",
    version,
    about = "Tested infrastructure runbooks: validate, test in a sandbox, hand off a verified package."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Parse and lint runbook files; exit 1 when any has an error.
    Validate(Validate),
    /// Turn a feedback file a package's script wrote on a failing target into a lesson.
    Feedback(Feedback),
    /// Test a runbook in a new sandbox and write its handoff package.
    Run(Run),
    /// Continue a persistent sandbox, optionally with another runbook (an upgrade).
    Resume(Resume),
    /// Sandboxes: list, destroy, reap.
    Sandbox(Sandbox),
    /// Re-prove an existing package: rehearse its scripts in a fresh sandbox with other values.
    Rehearse(Rehearse),
    /// Write a handoff package without running anything.
    Render(Render),
    /// Serve validate, sessions, steps, amendments, rollbacks and packages as Model Context Protocol tools on stdin/stdout.
    #[cfg(feature = "mcp")]
    Mcp(Mcp),
    /// Print the JSON Schema of runbook.yaml (or of a feedback or lesson file).
    Schema(Schema),
    /// Write a starter runbook.yaml that lints clean.
    New(New),
}

// `runbook validate`
#[derive(Args)]
pub struct Validate {
    /// Runbook files (YAML or JSON).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Treat these warnings as errors: a rule code (`no-rollback`), or `warnings` for all (repeatable).
    #[arg(long, value_name = "RULE")]
    pub deny: Vec<String>,
    /// A lessons library: warn (`unaddressed-lesson`) for each lesson that applies and is not carried (default: $RUNBOOK_LESSONS).
    #[arg(long, value_name = "DIR")]
    pub lessons: Option<PathBuf>,
}

// `runbook feedback`
#[derive(Args)]
pub struct Feedback {
    /// The feedback file (`feedback/<time>-<step>.yaml` of the package).
    pub file: PathBuf,
    /// The lessons library to write the lesson into (default: $RUNBOOK_LESSONS).
    #[arg(long, value_name = "DIR")]
    pub lessons: Option<PathBuf>,
    /// The lesson's title (default: the step and the error).
    #[arg(long)]
    pub title: Option<String>,
    /// The lesson's id, also its file name (default: a slug of the title).
    #[arg(long)]
    pub id: Option<String>,
    /// A pre-flight command that would have caught the failure (it must pass on a good target).
    #[arg(long, value_name = "COMMAND")]
    pub check: Option<String>,
    /// What the check must see (default: exit code 0): `exit-code:N`, `stdout-equals:TEXT`, `stdout-contains:TEXT`, `stdout-matches:REGEX`, and the same for stderr (repeatable).
    #[arg(long, value_name = "KIND:VALUE", requires = "check")]
    pub expect: Vec<String>,
    /// Why it failed (with --fix: a known issue for the matching steps).
    #[arg(long)]
    pub cause: Option<String>,
    /// What fixes it.
    #[arg(long)]
    pub fix: Option<String>,
    /// The tools it applies to (default: those the failed command invokes) (repeatable).
    #[arg(long, value_name = "TOOL")]
    pub tool: Vec<String>,
    /// The error as the target printed it (default: the line of the feedback that reads like an error); timestamps, process ids and hex ids are removed either way.
    #[arg(long, value_name = "TEXT")]
    pub error: Option<String>,
    /// A regular expression the failing command matches: the lesson applies to runbooks with a matching command, and its known issue goes to those steps (default: the failing command's tool and subcommand, e.g. `\bpg_ctl\b[^\n]*\bstart\b`).
    #[arg(long, value_name = "REGEX")]
    pub commands: Option<String>,
    /// The runbook the failing package was rendered from, to state the roles of the check's variables (default: the package's runbook.yaml next to the feedback directory, or --runbook when it has the same name).
    #[arg(long, value_name = "FILE")]
    pub origin: Option<PathBuf>,
    /// Also amend this runbook: the known issue on its steps, the check in its pre-flight, the minor version bumped.
    #[arg(long, value_name = "FILE")]
    pub runbook: Option<PathBuf>,
}

// `runbook run`
#[derive(Args)]
pub struct Run {
    /// The runbook file.
    pub file: PathBuf,
    /// Sandbox lifetime (default: recommended from the runbook).
    #[arg(long, value_enum)]
    pub lifetime: Option<LifetimeArg>,
    #[command(flatten)]
    pub run: RunArgs,
    /// Keep the sandbox afterwards (makes it persistent, to inspect, resume or destroy later).
    #[arg(long)]
    pub keep: bool,
    /// Run every target of the runbook's `targets:` (a version matrix), each in its own sandbox with its own rehearsal: a package per target under --out and one compatibility table.
    #[arg(long, conflicts_with = "keep")]
    pub matrix: bool,
    /// With --matrix: how many targets run at once (default: the machine's cores).
    #[arg(long, value_name = "N", requires = "matrix")]
    pub jobs: Option<usize>,
    /// With --matrix: run only this target (repeatable).
    #[arg(long = "target", value_name = "NAME", requires = "matrix")]
    pub targets: Vec<String>,
}

// `runbook resume`
#[derive(Args)]
pub struct Resume {
    /// The sandbox id (`runbook sandbox list`).
    pub id: String,
    /// A runbook to continue with; by default the one the sandbox was started with.
    #[arg(conflicts_with = "amend")]
    pub file: Option<PathBuf>,
    /// The runbook as you fixed it after a failure: the run goes back before the first
    /// step that changed (rolling back what passed after it) and goes on from there;
    /// the failure and the change are recorded in the package.
    #[arg(long, value_name = "FIXED")]
    pub amend: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
}

// `runbook sandbox`
#[derive(Args)]
pub struct Sandbox {
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    #[command(subcommand)]
    pub command: SandboxCommand,
}

// `runbook rehearse`
#[derive(Args)]
pub struct Rehearse {
    /// The package directory.
    pub package: PathBuf,
    /// Rehearse files a human changed since the package was written (they are recorded).
    #[arg(long)]
    pub allow_edits: bool,
    #[command(flatten)]
    pub values: VarArgs,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

// `runbook render`
#[derive(Args)]
pub struct Render {
    /// The runbook file.
    pub file: PathBuf,
    /// A test-summary.yaml from an earlier run, to render as tested.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Where to write the package.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace the package already at --out (only a package runbook wrote, unchanged since).
    #[arg(long)]
    pub force: bool,
}

// `runbook mcp`
#[cfg(feature = "mcp")]
#[derive(Args)]
pub struct Mcp {
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// The only directory the tools read and write in: relative paths are resolved against it, and a path that leaves it (`..`, an absolute path elsewhere, a symbolic link) is refused (default: the working directory).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

// `runbook schema`
#[derive(Args)]
pub struct Schema {
    /// Which document.
    #[arg(value_enum, default_value_t = SchemaKind::Runbook)]
    pub document: SchemaKind,
}

// `runbook new`
#[derive(Args)]
pub struct New {
    /// The runbook's name (a lowercase slug).
    pub name: String,
    /// Where to write it.
    #[arg(long, value_name = "FILE", default_value = "runbook.yaml")]
    pub out: PathBuf,
}

/// What `run` and `resume` share: the sandbox, the values, the package and how the run goes.
#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    #[command(flatten)]
    pub values: VarArgs,
    /// Where to write the handoff package (checked before anything runs).
    #[arg(long, value_name = "DIR", default_value = "handoff-package")]
    pub out: PathBuf,
    /// Replace the package already at --out (only a package runbook wrote, unchanged since).
    #[arg(long)]
    pub force: bool,
    /// After a successful run, run every rollback in reverse order and verify it.
    #[arg(long)]
    pub exercise_rollback: bool,
    /// Skip the rehearsal (`run` rehearses the package in a fresh sandbox with other values by default).
    #[arg(long)]
    pub no_rehearsal: bool,
    /// Stream the engine's events on stdout.
    #[arg(long, value_enum)]
    pub events: Option<EventsFormat>,
    /// Run the sandbox in a network namespace with loopback only (needs root).
    #[arg(long)]
    pub isolate_network: bool,
    /// A lessons library: the lessons that apply are carried (pre-flight checks run before step 1, known issues on their steps) into the run and the package (default: $RUNBOOK_LESSONS).
    #[arg(long, value_name = "DIR")]
    pub lessons: Option<PathBuf>,
}

/// Variable values: `--var` puts them on the command line, where every user of the machine
/// can read them (`/proc/PID/cmdline`); `--var-file` and `--secret` do not.
#[derive(Args)]
pub struct VarArgs {
    /// Override a variable's value (repeatable); every user of this machine can read it in the process list: give secrets with --secret or --var-file.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Read variable values from FILE: NAME=VALUE lines, `#` comments (repeatable; default: $RUNBOOK_VAR_FILE).
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
    /// Take variable NAME's value from the environment variable NAME or, when it is not set, from one line of stdin (repeatable).
    #[arg(long = "secret", value_name = "NAME", value_parser = parse_name)]
    pub secrets: Vec<String>,
}

/// Which provider, where its state lives, which kube contexts it may use.
#[derive(Args, Clone)]
pub struct SandboxArgs {
    /// Sandbox provider.
    #[arg(long, value_enum, default_value_t = ProviderArg::Local)]
    pub provider: ProviderArg,
    /// Where sandboxes and their state live (default: $RUNBOOK_STATE_DIR, /var/lib/runbook as root, else ~/.local/state/runbook).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// A kube context allowed as a sandbox: a name or pattern (`kind-*`, for a cluster on this machine) or `CONTEXT@SERVER` (repeatable; also $RUNBOOK_KUBE_CONTEXTS).
    #[arg(long = "allow-context", value_name = "PATTERN")]
    pub allow_contexts: Vec<String>,
    /// Pass NAME from this environment to the steps (repeatable), e.g. what a cloud CLI needs; its value is masked like a secret.
    #[arg(long = "keep-env", value_name = "NAME")]
    pub keep_env: Vec<String>,
    #[command(flatten)]
    pub container: ContainerArgs,
}

/// The container provider's image, engine, limits and network.
#[derive(Args, Clone)]
#[command(next_help_heading = "Container provider")]
pub struct ContainerArgs {
    /// The image the sandbox runs in (over the runbook's `target.image`).
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Pull the image when the engine does not have it (never by default).
    #[arg(long)]
    pub pull: bool,
    /// The engine's socket (default: $DOCKER_HOST, $CONTAINER_HOST, /var/run/docker.sock, /run/podman/podman.sock, then the rootless ones).
    #[arg(long, value_name = "SOCKET")]
    pub engine: Option<String>,
    /// Memory limit (`512Mi`, `1Gi`), over the runbook's `sandbox.limits.memory`.
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Process limit, over the runbook's `sandbox.limits.pids`.
    #[arg(long, value_name = "N")]
    pub pids: Option<u32>,
    /// CPU limit (`0.5`, `2`), over the runbook's `sandbox.limits.cpus`.
    #[arg(long, value_name = "CPUS")]
    pub cpus: Option<String>,
    /// The sandbox's network: none but loopback (default), or a private network of its own.
    #[arg(long, value_enum, default_value_t = NetworkArg::None)]
    pub network: NetworkArg,
    /// Publish a container port on a free port of the host's loopback (repeatable; needs --network private).
    #[arg(long, value_name = "PORT")]
    pub publish: Vec<u16>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum NetworkArg {
    None,
    Private,
}

#[derive(Subcommand)]
pub enum SandboxCommand {
    /// List sandboxes: id, runbook, last step, age, provider, lifetime (or why it is damaged).
    List,
    /// Destroy a sandbox (or all of them) and everything running in it.
    Destroy {
        /// The sandbox id.
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        /// Destroy every sandbox.
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Destroy what crashed runs left behind: expired namespaces (kube), non-persistent sandboxes nobody uses.
    Reap,
    /// Run a command in a kept sandbox as its steps run (its user, cgroup, network and
    /// variables), to look around: `runbook sandbox exec ID -- tail data/server.log`.
    Exec {
        /// The sandbox id (`runbook sandbox list`).
        id: String,
        /// The command: one argument is shell text, several are quoted and joined.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SchemaKind {
    Runbook,
    Feedback,
    Lesson,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum EventsFormat {
    Ndjson,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ProviderArg {
    Local,
    Kube,
    Container,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LifetimeArg {
    Ephemeral,
    Session,
    Persistent,
}

impl From<LifetimeArg> for Lifetime {
    fn from(l: LifetimeArg) -> Self {
        match l {
            LifetimeArg::Ephemeral => Lifetime::Ephemeral,
            LifetimeArg::Session => Lifetime::Session,
            LifetimeArg::Persistent => Lifetime::Persistent,
        }
    }
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))?;
    Ok((parse_name(name)?, value.to_owned()))
}

/// `name` when it is an UPPER_SNAKE variable name; else why not.
pub fn parse_name(name: &str) -> Result<String, String> {
    if !runbook::template::is_upper_snake(name) {
        return Err(format!("`{name}` is not an UPPER_SNAKE variable name"));
    }
    Ok(name.to_owned())
}
