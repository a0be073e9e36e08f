//! `runbook`: validate, test and hand off infrastructure runbooks from a shell.

mod progress;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{Args, Parser, Subcommand, ValueEnum};
use runbook::exec::{LocalProvider, Observer, Provider, RunOptions, Session};
use runbook::findings::Finding;
use runbook::render::{Evidence, Package};
use runbook::{Diagnostic, Lifetime, ParseError, Runbook};

#[derive(Parser)]
#[command(
    name = "runbook",
    version,
    about = "Tested infrastructure runbooks: validate, test in a sandbox, hand off a verified package."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and lint runbook files; exit 1 when any has an error.
    Validate {
        /// Runbook files (YAML or JSON).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Treat these warnings as errors: a rule code (`no-rollback`), or `warnings` for all (repeatable).
        #[arg(long, value_name = "RULE")]
        deny: Vec<String>,
        /// A lessons library: warn (`unaddressed-lesson`) for each lesson that applies and is not carried (default: $RUNBOOK_LESSONS).
        #[arg(long, value_name = "DIR")]
        lessons: Option<PathBuf>,
    },
    /// Turn a feedback file a package's script wrote on a failing target into a lesson.
    Feedback {
        /// The feedback file (`feedback/<time>-<step>.yaml` of the package).
        file: PathBuf,
        /// The lessons library to write the lesson into (default: $RUNBOOK_LESSONS).
        #[arg(long, value_name = "DIR")]
        lessons: Option<PathBuf>,
        /// The lesson's title (default: the step and the error).
        #[arg(long)]
        title: Option<String>,
        /// The lesson's id, also its file name (default: a slug of the title).
        #[arg(long)]
        id: Option<String>,
        /// A pre-flight command that would have caught the failure (it must pass on a good target).
        #[arg(long, value_name = "COMMAND")]
        check: Option<String>,
        /// What the check must see (default: exit code 0): `exit-code:N`, `stdout-equals:TEXT`, `stdout-contains:TEXT`, `stdout-matches:REGEX`, and the same for stderr (repeatable).
        #[arg(long, value_name = "KIND:VALUE", requires = "check")]
        expect: Vec<String>,
        /// Why it failed (with --fix: a known issue for the matching steps).
        #[arg(long)]
        cause: Option<String>,
        /// What fixes it.
        #[arg(long)]
        fix: Option<String>,
        /// The tools it applies to (default: those the failed command invokes) (repeatable).
        #[arg(long, value_name = "TOOL")]
        tool: Vec<String>,
        /// Also amend this runbook: the known issue on its steps, the check in its pre-flight, the minor version bumped.
        #[arg(long, value_name = "FILE")]
        runbook: Option<PathBuf>,
    },
    /// Test a runbook in a new sandbox and write its handoff package.
    Run {
        /// The runbook file.
        file: PathBuf,
        /// Sandbox lifetime (default: recommended from the runbook).
        #[arg(long, value_enum)]
        lifetime: Option<LifetimeArg>,
        #[command(flatten)]
        run: RunArgs,
        /// Keep the sandbox afterwards (makes it persistent, to inspect, resume or destroy later).
        #[arg(long)]
        keep: bool,
    },
    /// Continue a persistent sandbox, optionally with another runbook (an upgrade).
    Resume {
        /// The sandbox id (`runbook sandbox list`).
        id: String,
        /// A runbook to continue with; by default the one the sandbox was started with.
        #[arg(conflicts_with = "amend")]
        file: Option<PathBuf>,
        /// The runbook as you fixed it after a failure: the run goes back before the first
        /// step that changed (rolling back what passed after it) and goes on from there;
        /// the failure and the change are recorded in the package.
        #[arg(long, value_name = "FIXED")]
        amend: Option<PathBuf>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Sandboxes: list, destroy, reap.
    Sandbox {
        #[command(flatten)]
        sandbox: SandboxArgs,
        #[command(subcommand)]
        command: SandboxCommand,
    },
    /// Re-prove an existing package: rehearse its scripts in a fresh sandbox with other values.
    Rehearse {
        /// The package directory.
        package: PathBuf,
        /// Rehearse files a human changed since the package was written (they are recorded).
        #[arg(long)]
        allow_edits: bool,
        #[command(flatten)]
        values: VarArgs,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Write a handoff package without running anything.
    Render {
        /// The runbook file.
        file: PathBuf,
        /// A test-summary.yaml from an earlier run, to render as tested.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Where to write the package.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Replace the package already at --out (only a package runbook wrote, unchanged since).
        #[arg(long)]
        force: bool,
    },
    /// Serve validate, sessions, steps, amendments, rollbacks and packages as Model Context Protocol tools on stdin/stdout.
    #[cfg(feature = "mcp")]
    Mcp {
        #[command(flatten)]
        sandbox: SandboxArgs,
        /// The only directory the tools read and write in: relative paths are resolved against it, and a path that leaves it (`..`, an absolute path elsewhere, a symbolic link) is refused (default: the working directory).
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
    },
    /// Print the JSON Schema of runbook.yaml (or of a feedback or lesson file).
    Schema {
        /// Which document.
        #[arg(value_enum, default_value_t = SchemaKind::Runbook)]
        document: SchemaKind,
    },
    /// Write a starter runbook.yaml that lints clean.
    New {
        /// The runbook's name (a lowercase slug).
        name: String,
        /// Where to write it.
        #[arg(long, value_name = "FILE", default_value = "runbook.yaml")]
        out: PathBuf,
    },
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    sandbox: SandboxArgs,
    #[command(flatten)]
    values: VarArgs,
    /// Where to write the handoff package (checked before anything runs).
    #[arg(long, value_name = "DIR", default_value = "handoff-package")]
    out: PathBuf,
    /// Replace the package already at --out (only a package runbook wrote, unchanged since).
    #[arg(long)]
    force: bool,
    /// After a successful run, run every rollback in reverse order and verify it.
    #[arg(long)]
    exercise_rollback: bool,
    /// Skip the rehearsal (`run` rehearses the package in a fresh sandbox with other values by default).
    #[arg(long)]
    no_rehearsal: bool,
    /// Stream the engine's events on stdout.
    #[arg(long, value_enum)]
    events: Option<EventsFormat>,
    /// Run the sandbox in a network namespace with loopback only (needs root).
    #[arg(long)]
    isolate_network: bool,
    /// A lessons library: the lessons that apply are carried (pre-flight checks run before step 1, known issues on their steps) into the run and the package (default: $RUNBOOK_LESSONS).
    #[arg(long, value_name = "DIR")]
    lessons: Option<PathBuf>,
}

/// Variable values: `--var` puts them on the command line, where every user of the machine
/// can read them (`/proc/PID/cmdline`); `--var-file` and `--secret` do not.
#[derive(Args)]
struct VarArgs {
    /// Override a variable's value (repeatable); every user of this machine can read it in the process list: give secrets with --secret or --var-file.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    vars: Vec<(String, String)>,
    /// Read variable values from FILE: NAME=VALUE lines, `#` comments (repeatable; default: $RUNBOOK_VAR_FILE).
    #[arg(long = "var-file", value_name = "FILE")]
    var_files: Vec<PathBuf>,
    /// Take variable NAME's value from the environment variable NAME or, when it is not set, from one line of stdin (repeatable).
    #[arg(long = "secret", value_name = "NAME", value_parser = parse_name)]
    secrets: Vec<String>,
}

/// Which provider, where its state lives, which kube contexts it may use.
#[derive(Args)]
struct SandboxArgs {
    /// Sandbox provider.
    #[arg(long, value_enum, default_value_t = ProviderArg::Local)]
    provider: ProviderArg,
    /// Where sandboxes and their state live (default: $RUNBOOK_STATE_DIR, /var/lib/runbook as root, else ~/.local/state/runbook).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// A kube context allowed as a sandbox: a name or pattern (`kind-*`, for a cluster on this machine) or `CONTEXT@SERVER` (repeatable; also $RUNBOOK_KUBE_CONTEXTS).
    #[arg(long = "allow-context", value_name = "PATTERN")]
    allow_contexts: Vec<String>,
    /// Pass NAME from this environment to the steps (repeatable), e.g. what a cloud CLI needs; its value is masked like a secret.
    #[arg(long = "keep-env", value_name = "NAME")]
    keep_env: Vec<String>,
}

#[derive(Subcommand)]
enum SandboxCommand {
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
enum SchemaKind {
    Runbook,
    Feedback,
    Lesson,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum EventsFormat {
    Ndjson,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ProviderArg {
    Local,
    Kube,
}

#[derive(Clone, Copy, ValueEnum)]
enum LifetimeArg {
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

fn parse_name(name: &str) -> Result<String, String> {
    if !runbook::template::is_upper_snake(name) {
        return Err(format!("`{name}` is not an UPPER_SNAKE variable name"));
    }
    Ok(name.to_owned())
}

impl VarArgs {
    /// Every value given, from the files, the environment or stdin (`--secret`), and the
    /// command line; a variable given twice is an error naming both places.
    fn values(&self) -> Result<BTreeMap<String, String>, Failure> {
        let files = if self.var_files.is_empty() {
            std::env::var_os("RUNBOOK_VAR_FILE")
                .filter(|f| !f.is_empty())
                .map(PathBuf::from)
                .into_iter()
                .collect()
        } else {
            self.var_files.clone()
        };
        let mut values: BTreeMap<String, (String, String)> = BTreeMap::new();
        let mut add = |name: String, value: String, from: String| match values.get(&name) {
            Some((_, first)) => Err(Failure(format!(
                "variable `{name}` is given twice: {first} and {from}"
            ))),
            None => {
                values.insert(name, (value, from));
                Ok(())
            }
        };
        for file in &files {
            for (line, name, value) in read_var_file(file)? {
                add(name, value, format!("{}:{line}", file.display()))?;
            }
        }
        for name in &self.secrets {
            let value = match std::env::var(name) {
                Ok(value) => value,
                Err(_) => read_secret_line(name)?,
            };
            add(name.clone(), value, format!("--secret {name}"))?;
        }
        for (name, value) in &self.vars {
            add(name.clone(), value.clone(), format!("--var {name}"))?;
        }
        Ok(values.into_iter().map(|(k, (v, _))| (k, v)).collect())
    }

    /// Warns, by name, of each secret of `runbook` whose value came by `--var`: on the
    /// command line, where every user of the machine can read it.
    fn warn_exposed(&self, runbook: &Runbook) {
        for (name, _) in &self.vars {
            if runbook
                .variables
                .iter()
                .any(|v| v.name == *name && v.hides_value())
            {
                eprintln!(
                    "warning: --var {name}: `{name}` is a secret, and a value on the command line \
                     can be read by every user of this machine (ps, /proc/PID/cmdline); give it \
                     with --secret {name} (from the environment or stdin) or --var-file"
                );
            }
        }
    }
}

/// The `NAME=VALUE` lines of a variables file, with their line numbers. Errors name the
/// file and line, never a value.
fn read_var_file(file: &Path) -> Result<Vec<(usize, String, String)>, Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure(format!("--var-file `{}`: {e}", file.display())))?;
    let mut values = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = || format!("{}:{}", file.display(), i + 1);
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((name, value)) = trimmed.split_once('=') else {
            return Err(Failure(format!(
                "{}: expected NAME=VALUE (or a `#` comment)",
                at()
            )));
        };
        let name = parse_name(name.trim_end()).map_err(|e| Failure(format!("{}: {e}", at())))?;
        values.push((i + 1, name, value.to_owned()));
    }
    Ok(values)
}

/// One line of stdin, the value of `--secret NAME`; on a terminal, asked for without echo.
fn read_secret_line(name: &str) -> Result<String, Failure> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    use std::io::BufRead;
    let stdin = std::io::stdin();
    let saved = if stdin.is_terminal() {
        eprint!("{name} (not echoed): ");
        let saved = tcgetattr(&stdin).ok();
        if let Some(mut quiet) = saved.clone() {
            quiet.local_flags.remove(LocalFlags::ECHO);
            let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
        }
        saved
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
        eprintln!();
    }
    match read {
        Ok(0) => Err(Failure(format!(
            "--secret {name}: `{name}` is not in the environment and stdin has no line for it"
        ))),
        Ok(_) => Ok(line.trim_end_matches(['\n', '\r']).to_owned()),
        Err(e) => Err(Failure(format!("--secret {name}: cannot read stdin: {e}"))),
    }
}

/// An error for the user: what went wrong and what to do. Never a panic, never Debug.
struct Failure(String);

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

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("error: internal error ({msg}); please report it with the command you ran");
    }));
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(Failure(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    };
    // Tasks still running (an MCP tool call whose client left) are dropped here, and with
    // them their sessions: a command in flight is killed, the sandbox torn down or kept,
    // synchronously. Only blocking threads are waited for, and briefly: one may be reading a
    // stdin that an MCP client keeps open.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    code
}

async fn dispatch(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Validate {
            files,
            format,
            deny,
            lessons,
        } => {
            let lessons = load_lessons(lessons)?;
            validate(&files, format, &deny, &lessons)
        }
        Command::Feedback {
            file,
            lessons,
            title,
            id,
            check,
            expect,
            cause,
            fix,
            tool,
            runbook,
        } => {
            let check = check.map(|c| expected_check(c, &expect)).transpose()?;
            let draft = runbook::LessonDraft {
                id,
                title,
                check,
                cause,
                fix,
                tools: tool,
                commands: None,
            };
            feedback(&file, lessons, draft, runbook.as_deref())
        }
        #[cfg(feature = "mcp")]
        Command::Mcp {
            sandbox: which,
            root,
        } => {
            let p = provider(&which, false).await?;
            let mut signals = Signals::listen()?;
            let root = root.unwrap_or_else(|| PathBuf::from("."));
            let server = runbook::mcp::McpServer::new(p, &root)
                .map_err(|e| Failure(format!("--root `{}`: {e}", root.display())))?;
            tokio::select! {
                r = server.clone().serve_stdio() => {
                    r.map_err(|e| Failure(format!("the MCP connection failed: {e}")))?;
                    Ok(ExitCode::SUCCESS)
                }
                n = signals.next() => {
                    server.close();
                    eprintln!("{}: the MCP server stopped; its ephemeral and session sandboxes are torn down", signal_name(n));
                    Ok(ExitCode::from(128 + n))
                }
            }
        }
        Command::Schema { document } => {
            print!(
                "{}",
                match document {
                    SchemaKind::Runbook => runbook::json_schema(),
                    SchemaKind::Feedback => runbook::feedback_json_schema(),
                    SchemaKind::Lesson => runbook::lesson_json_schema(),
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::New { name, out } => new_runbook(&name, &out),
        Command::Render {
            file,
            report,
            out,
            force,
        } => render(&file, report.as_deref(), &out, force),
        Command::Rehearse {
            package,
            allow_edits,
            values,
            sandbox: which,
        } => {
            let options = runbook::RehearsalOptions {
                vars: values.values()?,
                ..runbook::RehearsalOptions::default()
            };
            let p = provider(&which, false).await?;
            rehearse_package(p.as_ref(), &package, allow_edits, &values, &options).await
        }
        Command::Sandbox {
            sandbox: which,
            command,
        } => {
            let p = provider(&which, false).await?;
            sandbox(p.as_ref(), command).await
        }
        Command::Run {
            file,
            lifetime,
            run,
            keep,
        } => {
            let mut runbook = load_clean(&file)?;
            let vars = run.values.values()?;
            for carried in
                runbook::ops::prepare(&mut runbook, &vars, &load_lessons(run.lessons.clone())?)?
            {
                eprintln!("{carried}");
            }
            runbook::render::check_target(&run.out, run.force)?;
            let lifetime = match (lifetime.map(Lifetime::from), keep) {
                (Some(l), true) if l != Lifetime::Persistent => {
                    return Err(Failure(format!(
                        "--keep keeps the sandbox, which a {l} lifetime cannot: drop one of them"
                    )));
                }
                (_, true) => Some(Lifetime::Persistent),
                (l, false) => l,
            };
            let provider = provider(&run.sandbox, run.isolate_network).await?;
            run_session(provider.as_ref(), Start::New(runbook, lifetime), &run, vars).await
        }
        Command::Resume {
            id,
            file,
            amend,
            run,
        } => {
            let amending = amend.is_some();
            let mut runbook = file.or(amend).as_deref().map(load_clean).transpose()?;
            let vars = run.values.values()?;
            if let Some(rb) = runbook.as_mut() {
                let lessons = load_lessons(run.lessons.clone())?;
                for carried in runbook::ops::prepare(rb, &vars, &lessons)? {
                    eprintln!("{carried}");
                }
            }
            runbook::render::check_target(&run.out, run.force)?;
            let provider = provider(&run.sandbox, run.isolate_network).await?;
            let start = match (amending, runbook) {
                (true, Some(rb)) => Start::Amend(id, rb),
                (_, runbook) => Start::Resume(id, runbook),
            };
            run_session(provider.as_ref(), start, &run, vars).await
        }
    }
}

async fn provider(args: &SandboxArgs, isolate_network: bool) -> Result<Box<dyn Provider>, Failure> {
    if isolate_network && args.provider == ProviderArg::Kube {
        return Err(Failure(
            "--isolate-network cuts the steps off from the Kubernetes API server: the kube provider's \
             sandbox is its namespace; drop the flag"
                .into(),
        ));
    }
    let (which, allow_contexts) = (args.provider, &args.allow_contexts);
    let local = match args.state_dir.as_deref() {
        Some(dir) => LocalProvider::with_root(dir),
        None => LocalProvider::new()?,
    }
    .isolate_network(isolate_network);
    let local = args
        .keep_env
        .iter()
        .fold(local, |local, name| local.keep_env(name));
    Ok(match which {
        ProviderArg::Local => Box::new(local),
        #[cfg(feature = "kube")]
        ProviderArg::Kube => {
            let provider =
                runbook::exec::KubeProvider::from_kubeconfig(local, allow_contexts).await?;
            eprintln!("{}", provider.allowed_by());
            Box::new(provider)
        }
        #[cfg(not(feature = "kube"))]
        ProviderArg::Kube => {
            let _ = allow_contexts;
            return Err(Failure(
                "this build has no Kubernetes provider: build runbook with its `kube` feature"
                    .into(),
            ));
        }
    })
}

// ---- validate -----------------------------------------------------------------

/// Parses and lints a file: the runbook (when it parses) and every finding, in file order.
fn check_file(file: &Path, lessons: &[runbook::Lesson]) -> (Option<Runbook>, Vec<Finding>) {
    match runbook::load(file) {
        Err(e) => (None, vec![Finding::parse(&e, &file.display().to_string())]),
        Ok((rb, text)) => {
            let findings = runbook::findings::of(&rb, &text, &file.display().to_string(), lessons);
            (Some(rb), findings)
        }
    }
}

fn validate(
    files: &[PathBuf],
    format: Format,
    deny: &[String],
    lessons: &[runbook::Lesson],
) -> Result<ExitCode, Failure> {
    if let Some(bad) = deny.iter().find(|d| {
        *d != "warnings"
            && !runbook::Rule::ALL
                .iter()
                .any(|r| *r != runbook::Rule::Custom && r.code() == d.as_str())
    }) {
        let codes: Vec<&str> = runbook::Rule::ALL
            .iter()
            .filter(|r| **r != runbook::Rule::Custom)
            .map(|r| r.code())
            .collect();
        return Err(Failure(format!(
            "--deny `{bad}` is not a rule: use `warnings` or one of {}",
            codes.join(", ")
        )));
    }
    let mut findings: Vec<Finding> = files
        .iter()
        .flat_map(|f| check_file(f, lessons).1)
        .collect();
    for f in &mut findings {
        if !f.is_error() && deny.iter().any(|d| d == "warnings" || *d == f.code) {
            f.severity = "error".into();
        }
    }
    let errors = findings.iter().filter(|f| f.is_error()).count();
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&findings).unwrap_or_else(|_| "[]".into())
        ),
        Format::Text => {
            for f in &findings {
                println!("{}", f.text());
            }
            let warnings = findings.len() - errors;
            eprintln!(
                "{} file(s): {errors} error(s), {warnings} warning(s)",
                files.len()
            );
        }
    }
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Loads a runbook and refuses it when it does not parse or has lint errors, printing
/// them as `validate` does.
fn load_clean(file: &Path) -> Result<Runbook, Failure> {
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

// ---- run / resume -------------------------------------------------------------

enum Start {
    New(Runbook, Option<Lifetime>),
    Resume(String, Option<Runbook>),
    /// Continue a kept sandbox with the runbook as fixed after a failure.
    Amend(String, Runbook),
}

async fn run_session(
    provider: &dyn Provider,
    start: Start,
    args: &RunArgs,
    vars: BTreeMap<String, String>,
) -> Result<ExitCode, Failure> {
    let mut signals = Signals::listen()?;
    let sandbox_id = Arc::new(Mutex::new(None));
    let observer: Arc<dyn Observer> = match args.events {
        Some(EventsFormat::Ndjson) => Arc::new(progress::Ndjson {
            sandbox: sandbox_id.clone(),
        }),
        None if std::io::stderr().is_terminal() => {
            let t = progress::Terminal::new(sandbox_id.clone());
            t.spawn_ticker();
            Arc::new(t)
        }
        None => Arc::new(progress::Quiet {
            sandbox: sandbox_id.clone(),
        }),
    };
    // An upgrade continues the state an earlier package left: it cannot be rehearsed from
    // scratch, so `resume` does not rehearse.
    let rehearse = !args.no_rehearsal && matches!(start, Start::New(..));
    let lifetime_hint = match &start {
        Start::New(rb, l) => l.unwrap_or_else(|| runbook::recommend_lifetime(rb).lifetime),
        Start::Resume(..) | Start::Amend(..) => Lifetime::Persistent,
    };
    let given = vars.clone();
    let options = RunOptions {
        lifetime: match &start {
            Start::New(_, l) => *l,
            Start::Resume(..) | Start::Amend(..) => None,
        },
        vars,
        observer,
        ..RunOptions::default()
    };
    let mode = runbook::exec::RunMode {
        exercise_rollback: args.exercise_rollback,
        ..runbook::exec::RunMode::default()
    };
    let work = async {
        let session = match start {
            Start::New(rb, _) => Session::start(provider, rb, options).await?,
            Start::Resume(id, rb) => Session::resume(provider, &id, rb, options).await?,
            Start::Amend(id, fixed) => {
                let mut session = Session::resume(provider, &id, None, options).await?;
                match session.amend_runbook(fixed).await? {
                    Some(step) => eprintln!("amended: the run goes back to step `{step}` and on"),
                    None => eprintln!("the fixed runbook changes no step: the run goes on"),
                }
                session
            }
        };
        // After the start: a resumed sandbox's runbook is known only now.
        runbook::ops::check_vars(session.runbook(), &given)
            .map_err(|e| runbook::exec::ExecError::Usage(e.to_string()))?;
        args.values.warn_exposed(session.runbook());
        runbook::exec::drive(session, mode).await
    };
    // The work is dropped when a signal wins, before anything is printed: dropping the
    // session kills the command in flight and tears down (or keeps) the sandbox.
    let finished = tokio::select! {
        r = work => Ok(r),
        n = signals.next() => Err(n),
    };
    let outcome = match finished {
        Ok(r) => r?,
        Err(n) => {
            let id = sandbox_id
                .lock()
                .ok()
                .and_then(|s| s.clone())
                .unwrap_or_else(|| "(not yet created)".into());
            let name = signal_name(n);
            if lifetime_hint == Lifetime::Persistent {
                eprintln!(
                    "\n{name}: sandbox {id} is kept; continue with `runbook resume {id}` or remove it with `runbook sandbox destroy {id}`"
                );
            } else {
                eprintln!("\n{name}: sandbox {id} was torn down, with everything it ran");
            }
            return Ok(ExitCode::from(128 + n));
        }
    };
    if !outcome.preflight_problems.is_empty() {
        eprintln!(
            "pre-flight failed:\n{}",
            outcome.preflight_problems.join("\n")
        );
    } else if !outcome.passed() {
        print_failure(&outcome.report);
    }
    if outcome
        .report
        .rollback
        .as_ref()
        .is_some_and(|r| r.verdict != runbook::report::Verdict::Passed)
    {
        eprintln!("the rollback exercise FAILED: see test-results/test-summary.yaml");
    }
    let kept = (outcome.report.sandbox.lifetime == Some(Lifetime::Persistent))
        .then(|| outcome.report.sandbox.id.clone());
    // Where a kept sandbox is, to look around in it.
    let location = match &kept {
        Some(id) => provider
            .list()
            .await
            .ok()
            .and_then(|all| all.into_iter().find(|s| &s.id == id))
            .and_then(|s| s.location),
        None => None,
    };
    let out = &args.out;
    let request = runbook::ops::FinishRequest {
        out,
        force: args.force,
        rehearse,
    };
    let mut on = |stage: runbook::ops::FinishStage<'_>| match stage {
        runbook::ops::FinishStage::Written(outcome) => {
            let verdict = outcome.report.verdict.as_str();
            eprintln!("handoff package ({verdict}): {}", out.display());
            if let Some(id) = &kept {
                eprintln!(
                    "sandbox {id} is kept{}: `runbook resume {id} [FILE]` continues it, `runbook sandbox destroy {id}` removes it",
                    location
                        .as_deref()
                        .map(|l| format!(" ({l})"))
                        .unwrap_or_default()
                );
            }
        }
        runbook::ops::FinishStage::Rehearsing => eprintln!(
            "rehearsing the package: its own scripts, in a fresh sandbox, with other values"
        ),
        runbook::ops::FinishStage::Rehearsed(rehearsal) => {
            print_rehearsal_runs(rehearsal);
            if rehearsal.verdict != runbook::report::Verdict::Passed {
                eprintln!("rehearsal FAILED: {}", rehearsal.failure);
            }
        }
        _ => {}
    };
    let finishing = runbook::ops::finish(provider, outcome, request, &mut on);
    // The rehearsal sandbox dies with the rehearsal when a signal wins.
    let handoff = tokio::select! {
        r = finishing => r?,
        n = signals.next() => {
            eprintln!("\n{}: the rehearsal sandbox was torn down; {} holds the sandbox run's package, not rehearsed", signal_name(n), out.display());
            return Ok(ExitCode::from(128 + n));
        }
    };
    if let Some(rehearsal) = &handoff.outcome.report.rehearsal {
        eprintln!(
            "handoff package ({}): {}",
            if rehearsal.verdict == runbook::report::Verdict::Passed {
                "passed, rehearsed"
            } else {
                "rehearsal FAILED"
            },
            out.display()
        );
    }
    Ok(if handoff.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `runbook sandbox exec`: a command in a kept sandbox, its output as it would be in a
/// step's record (secrets masked), its exit code as ours.
async fn sandbox_exec(
    provider: &dyn Provider,
    id: &str,
    command: &[String],
) -> Result<ExitCode, Failure> {
    let text = match command {
        [one] => one.clone(),
        many => many
            .iter()
            .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
            .collect::<Vec<_>>()
            .join(" "),
    };
    let mut session = Session::resume(provider, id, None, RunOptions::default())
        .await
        .map_err(|e| match e {
            runbook::exec::ExecError::NotFound(_) => Failure(format!(
                "no sandbox `{id}`: `runbook sandbox list` shows those there are"
            )),
            runbook::exec::ExecError::Usage(m) if m.contains("not persistent") => Failure(format!(
                "sandbox `{id}` is not kept, so it cannot be entered: run with --keep (a persistent sandbox) to look around after a run"
            )),
            e => e.into(),
        })?;
    let out = session
        .exec(&text, std::time::Duration::from_secs(600))
        .await?;
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    Ok(match out.exit_code {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::from(137),
    })
}

/// One line per script the rehearsal ran.
fn print_rehearsal_runs(rehearsal: &runbook::report::Rehearsal) {
    for run in &rehearsal.runs {
        eprintln!(
            "  {} {}: {}",
            if run.passed { "ok" } else { "FAILED" },
            run.phase,
            run.command
        );
    }
}

fn print_failure(report: &runbook::report::Report) {
    let Some(record) = report
        .steps
        .iter()
        .rfind(|r| r.status == runbook::report::StepStatus::Failed)
    else {
        return;
    };
    let Some(attempt) = record.attempts.last() else {
        return;
    };
    eprintln!(
        "\nstep `{}` ({}) failed: {}",
        record.id, record.title, attempt.failure
    );
    eprintln!("command:\n{}", indent(&attempt.command));
    for c in &attempt.checks {
        let mark = if c.passed { "ok" } else { "FAILED" };
        eprintln!(
            "check `{}` {mark}: expected {}; saw {} ({} attempt(s))",
            c.name, c.expected, c.actual, c.attempts
        );
    }
    let output = if attempt.output.stderr.trim().is_empty() {
        &attempt.output.stdout
    } else {
        &attempt.output.stderr
    };
    if !output.trim().is_empty() {
        let tail: Vec<&str> = output.trim_end().lines().rev().take(10).collect();
        eprintln!(
            "last output:\n{}",
            indent(&tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
        );
    }
    if !attempt.causes.is_empty() {
        eprintln!(
            "the cause, as the sandbox showed it:\n{}",
            indent(&attempt.causes.join("\n"))
        );
    }
    for file in &attempt.files {
        let tail: Vec<&str> = file
            .lines
            .iter()
            .rev()
            .take(10)
            .map(String::as_str)
            .collect();
        eprintln!(
            "end of {} (changed while the step ran):\n{}",
            file.path,
            indent(&tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
        );
    }
    for d in &attempt.diagnose {
        eprintln!("$ {}\n{}", d.command, indent(d.output.trim_end()));
    }
    match report.sandbox.lifetime {
        Some(runbook::Lifetime::Persistent) => eprintln!(
            "fix the runbook, then go on in the same sandbox: `runbook resume {} --amend FIXED.yaml`",
            report.sandbox.id
        ),
        _ => eprintln!(
            "sandbox {} was torn down; rerun with --keep to keep it and continue it with `runbook resume`",
            report.sandbox.id
        ),
    }
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// SIGINT, SIGTERM and SIGHUP, listened to from the start of a run.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn listen() -> Result<Signals, Failure> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The number of the next signal.
    async fn next(&mut self) -> u8 {
        tokio::select! {
            _ = self.int.recv() => 2,
            _ = self.term.recv() => 15,
            _ = self.hup.recv() => 1,
        }
    }
}

fn signal_name(n: u8) -> &'static str {
    match n {
        2 => "interrupted (SIGINT)",
        15 => "terminated (SIGTERM)",
        _ => "hung up (SIGHUP)",
    }
}

// ---- rehearse -----------------------------------------------------------------

/// `runbook rehearse PACKAGE`: the package's scripts, as they are on disk, in a fresh
/// sandbox; the evidence goes next to the package (`PACKAGE.rehearsal.yaml`), never into it.
async fn rehearse_package(
    provider: &dyn Provider,
    dir: &Path,
    allow_edits: bool,
    values: &VarArgs,
    options: &runbook::RehearsalOptions,
) -> Result<ExitCode, Failure> {
    let (package, edited) = runbook::render::read_package(dir)?;
    if !edited.is_empty() && !allow_edits {
        return Err(Failure(format!(
            "`{}` was changed since it was written ({}): its SHA256SUMS no longer hold. \
             Rehearse the changed package with --allow-edits (the changed files are recorded)",
            dir.display(),
            edited.join(", ")
        )));
    }
    let name = dir
        .file_name()
        .map_or_else(|| "package".into(), |n| n.to_string_lossy().into_owned());
    let evidence = dir.with_file_name(format!("{name}.rehearsal.yaml"));
    refuse_link(&evidence)?;
    let text = package
        .text("runbook.yaml")
        .ok_or_else(|| Failure(format!("`{}` has no runbook.yaml", dir.display())))?;
    let runbook = runbook::from_yaml_str(text)
        .map_err(|e| Failure(e.in_file(dir.join("runbook.yaml")).to_string()))?;
    values.warn_exposed(&runbook);
    let values = runbook::sandbox_values(&runbook);
    let mut signals = Signals::listen()?;
    eprintln!(
        "rehearsing `{}`: its own scripts, in a fresh sandbox, with other values",
        dir.display()
    );
    let mut rehearsal = tokio::select! {
        r = runbook::rehearse(provider, &runbook, &package, &values, options) => r?,
        n = signals.next() => {
            eprintln!("\n{}: the rehearsal sandbox was torn down", signal_name(n));
            return Ok(ExitCode::from(128 + n));
        }
    };
    rehearsal.edited = edited;
    print_rehearsal_runs(&rehearsal);
    write_no_follow(&evidence, &runbook::to_yaml(&rehearsal))?;
    let passed = rehearsal.verdict == runbook::report::Verdict::Passed;
    if passed {
        eprintln!("rehearsal passed: {}", evidence.display());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "rehearsal FAILED: {}\nevidence: {}",
            rehearsal.failure,
            evidence.display()
        );
        Ok(ExitCode::FAILURE)
    }
}

/// Refuses a path that exists and is not a regular file: a symbolic link planted there
/// would have root write wherever it points.
fn refuse_link(path: &Path) -> Result<(), Failure> {
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
fn write_no_follow(path: &Path, text: &str) -> Result<(), Failure> {
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

// ---- render / new / sandbox ---------------------------------------------------

fn render(
    file: &Path,
    report: Option<&Path>,
    out: &Path,
    force: bool,
) -> Result<ExitCode, Failure> {
    let runbook = load_clean(file)?;
    let report = match report {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure(format!("cannot read `{}`: {e}", path.display())))?;
            Some(
                runbook::report_from_yaml_str(&text)
                    .map_err(|e| Failure(e.in_file(path).to_string()))?,
            )
        }
        None => None,
    };
    let evidence = report.as_ref().map(|r| Evidence {
        report: r,
        log: None,
    });
    Package::render(&runbook, evidence, &[])?.write_to(out, force)?;
    eprintln!(
        "handoff package ({}): {}",
        if report.is_some() {
            "from the report"
        } else {
            "untested"
        },
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

const STARTER: &str = include_str!("starter.yaml");

// ---- lessons and feedback ------------------------------------------------------

/// The lessons library of `--lessons DIR`, else `$RUNBOOK_LESSONS`, else none.
fn lessons_dir(arg: Option<PathBuf>) -> Option<PathBuf> {
    arg.or_else(|| std::env::var_os("RUNBOOK_LESSONS").map(PathBuf::from))
        .filter(|p| !p.as_os_str().is_empty())
}

fn load_lessons(arg: Option<PathBuf>) -> Result<Vec<runbook::Lesson>, Failure> {
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

fn parse_failure(e: &ParseError) -> Failure {
    Failure(format!("{e}\n    help: {}", e.help))
}

/// A check of `command` with the `--expect KIND:VALUE` conditions.
fn expected_check(command: String, expect: &[String]) -> Result<runbook::Check, Failure> {
    let mut check = runbook::Check::command(command);
    for e in expect {
        let bad = || {
            Failure(format!(
                "--expect `{e}`: use exit-code:N, stdout-equals:TEXT, stdout-contains:TEXT, \
                 stdout-matches:REGEX, or the same for stderr"
            ))
        };
        let (kind, value) = e.split_once(':').ok_or_else(bad)?;
        check = match kind {
            "exit-code" => check.exit_code(value.trim().parse().map_err(|_| bad())?),
            "stdout-equals" => check.stdout_equals(value),
            "stdout-contains" => check.stdout_contains(value),
            "stdout-matches" => check.stdout_matches(value),
            "stderr-equals" => check.stderr_equals(value),
            "stderr-contains" => check.stderr_contains(value),
            "stderr-matches" => check.stderr_matches(value),
            _ => return Err(bad()),
        };
    }
    Ok(check)
}

/// `runbook feedback`: the lesson into the library, and with `--runbook` into that runbook.
fn feedback(
    file: &Path,
    lessons: Option<PathBuf>,
    draft: runbook::LessonDraft,
    amend: Option<&Path>,
) -> Result<ExitCode, Failure> {
    let dir = lessons_dir(lessons).ok_or_else(|| {
        Failure("say where the lessons library is: --lessons DIR (or $RUNBOOK_LESSONS)".into())
    })?;
    let feedback = runbook::load_feedback(file).map_err(|e| parse_failure(&e))?;
    let lesson = runbook::Lesson::from_feedback(&feedback, draft)?;
    // The library must stay readable: refuse a lesson whose id is taken.
    let existing = runbook::load_lessons(&dir).map_err(|e| parse_failure(&e))?;
    let path = dir.join(format!("{}.yaml", lesson.id));
    if existing.iter().any(|l| l.id == lesson.id) || path.exists() {
        return Err(Failure(format!(
            "the library already has a lesson `{}` ({}): give this one another --id",
            lesson.id,
            path.display()
        )));
    }
    // A runbook that cannot carry the lesson is refused before anything is written.
    let amended = match amend {
        None => None,
        Some(rb_path) => {
            let (mut rb, _) = runbook::load(rb_path).map_err(|e| parse_failure(&e))?;
            let done = rb.adopt_lesson(&lesson);
            if done.is_empty() {
                eprintln!(
                    "{} already carries lesson `{}`",
                    rb_path.display(),
                    lesson.id
                );
                None
            } else {
                rb.bump_minor_version()?;
                let errors: Vec<String> = rb
                    .lint()
                    .into_iter()
                    .filter(Diagnostic::is_error)
                    .map(|d| d.to_string())
                    .collect();
                if !errors.is_empty() {
                    return Err(Failure(format!(
                        "{} cannot carry the lesson; nothing was written:\n{}",
                        rb_path.display(),
                        errors.join("\n")
                    )));
                }
                Some((rb_path, rb, done))
            }
        }
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure(format!("cannot create {}: {e}", dir.display())))?;
    let text = format!(
        "# Learnt from {}; written by `runbook feedback`.\n{}",
        file.display(),
        runbook::to_yaml(&lesson)
    );
    write_new(&path, &text)?;
    println!("lesson `{}` written to {}", lesson.id, path.display());
    if let Some((rb_path, rb, done)) = amended {
        std::fs::write(rb_path, runbook::to_yaml_string(&rb))
            .map_err(|e| Failure(format!("cannot write {}: {e}", rb_path.display())))?;
        let mut what = Vec::new();
        if done.preflight {
            what.push(format!("pre-flight check `{}`", lesson.id));
        }
        if !done.steps.is_empty() {
            what.push(format!("known issue on {}", done.steps.join(", ")));
        }
        println!(
            "{} amended: {}; version {}",
            rb_path.display(),
            what.join(", "),
            rb.metadata.version
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a file that must not exist yet.
fn write_new(path: &Path, text: &str) -> Result<(), Failure> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| Failure(format!("cannot write {}: {e}", path.display())))
}

fn new_runbook(name: &str, out: &Path) -> Result<ExitCode, Failure> {
    let text = STARTER.replace("NAME", name);
    let rb = runbook::from_yaml_str(&text)
        .map_err(|e| Failure(format!("`{name}` cannot be a runbook name: {e}")))?;
    if let Some(d) = rb.lint().into_iter().find(Diagnostic::is_error) {
        return Err(Failure(format!(
            "`{name}` cannot be a runbook name: {}",
            d.message
        )));
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out);
    match file {
        Ok(mut f) => std::io::Write::write_all(&mut f, text.as_bytes())?,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Failure(format!(
                "`{}` already exists; choose another path with --out",
                out.display()
            )));
        }
        Err(e) => return Err(Failure(format!("cannot write `{}`: {e}", out.display()))),
    }
    eprintln!(
        "wrote {}: edit it, then `runbook validate {}` and `runbook run {}`",
        out.display(),
        out.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn sandbox(provider: &dyn Provider, command: SandboxCommand) -> Result<ExitCode, Failure> {
    match command {
        SandboxCommand::Exec { id, command } => sandbox_exec(provider, &id, &command).await,
        SandboxCommand::List => {
            let list = provider.list().await?;
            if list.is_empty() {
                eprintln!("no sandboxes");
                return Ok(ExitCode::SUCCESS);
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            println!(
                "{:<28} {:<16} {:<20} {:>6}  {:<8} {:<10} WHERE",
                "ID", "RUNBOOK", "LAST STEP", "AGE", "PROVIDER", "LIFETIME"
            );
            for s in list {
                println!(
                    "{:<28} {:<16} {:<20} {:>6}  {:<8} {:<10} {}",
                    s.id,
                    s.runbook,
                    s.last_step.as_deref().unwrap_or("-"),
                    age(now.saturating_sub(s.created_unix)),
                    s.provider,
                    match &s.damaged {
                        Some(why) => format!("DAMAGED: {why}"),
                        None => s.lifetime.to_string(),
                    },
                    s.location.as_deref().unwrap_or("-")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        SandboxCommand::Reap => {
            let reaped = provider.reap().await?;
            if reaped.destroyed.is_empty() && reaped.skipped.is_empty() {
                eprintln!("nothing to reap");
            }
            for id in &reaped.destroyed {
                eprintln!("reaped {id}");
            }
            for (id, why) in &reaped.skipped {
                eprintln!("left {id}: {why}");
            }
            Ok(ExitCode::SUCCESS)
        }
        SandboxCommand::Destroy { id, all } => {
            let ids: Vec<String> = if all {
                provider.list().await?.into_iter().map(|s| s.id).collect()
            } else {
                id.into_iter().collect()
            };
            // Every sandbox is tried: a busy or broken one does not stop the others.
            let mut failed = 0;
            for id in ids {
                match provider.destroy(&id).await {
                    Ok(()) => eprintln!("destroyed {id}"),
                    Err(e) => {
                        failed += 1;
                        eprintln!("error: {id}: {e}");
                    }
                }
            }
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
