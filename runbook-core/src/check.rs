//! Verifications: a probe (a command, or a typed Kubernetes query) and a positive expectation.

/// The timeout of one check attempt without a `within` deadline: 60 seconds, in the
/// sandbox and in the package's scripts alike (the rule: [`Retry::attempt_limit`]).
pub const DEFAULT_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

use std::borrow::Cow;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use crate::HumanDuration;

/// A verification: positive confirmation that a step did what it should.
///
/// "Verification is not 'it did not error'": a check runs its own probe and compares
/// what it saw with what it expects. With [`Check::within`] it is retried until the
/// expectation holds or the deadline passes, for states that become true eventually.
///
/// ```
/// use std::time::Duration;
/// use runbook_core::Check;
/// let check = Check::command("kubectl get pod db-0 -o jsonpath='{.status.phase}'")
///     .named("pod is running")
///     .stdout_equals("Running")
///     .within(Duration::from_secs(60));
/// assert_eq!(check.retry.within.unwrap().as_duration(), Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// A short human name ("pod is running"); optional.
    pub name: Option<String>,
    /// What is observed.
    pub probe: Probe,
    /// What must be observed for the check to pass.
    pub expect: Expect,
    /// How long to keep trying.
    pub retry: Retry,
}

/// What a check observes.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// A shell command, run like a step command (same environment, same working dir).
    Command(String),
    /// A typed Kubernetes query, run through the API by a provider that supports it.
    Kube(KubeCheck),
    /// A file in the sandbox's work directory, looked at without a process: present (or
    /// absent), holding a text, matching a pattern, with a mode.
    File(FileProbe),
    /// A TCP port that accepts a connection.
    Tcp(TcpProbe),
    /// An HTTP URL that answers with a status (and a body holding a text).
    Http(HttpProbe),
    /// A process of the sandbox running, by name.
    Process(ProcessProbe),
}

/// Typed Kubernetes verifications (data only; the `kube` provider runs them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum KubeCheck {
    /// Pods matching a label selector are Running and Ready.
    PodsReady {
        /// Label selector, e.g. `app.kubernetes.io/name=postgresql`.
        selector: String,
        /// How many pods must be ready (default 1).
        #[serde(default = "one")]
        count: u32,
    },
    /// A Deployment, StatefulSet or DaemonSet finished rolling out, judged as
    /// `kubectl rollout status` judges it.
    RolloutComplete {
        /// `Deployment`, `StatefulSet` or `DaemonSet`.
        kind: String,
        /// Object name.
        name: String,
    },
    /// A Service has at least one ready endpoint.
    ServiceEndpoints {
        /// Service name.
        name: String,
    },
    /// A resource exists.
    Exists(KubeObjectRef),
    /// A resource does not exist.
    Absent(KubeObjectRef),
}

/// What a `file` probe expects of a file (paths relative to the work directory; `${NAME}`
/// placeholders in `path` and `contains` are filled with the values in force).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileProbe {
    /// The file, relative to the work directory.
    pub path: String,
    /// Whether it must exist (default) or must not.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub exists: bool,
    /// A text the file must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// A regular expression (Rust `regex` syntax) the content must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    /// Its permission bits in octal (`"0600"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

impl FileProbe {
    /// A probe that the file at `path` exists.
    pub fn exists(path: impl Into<String>) -> Self {
        FileProbe {
            path: path.into(),
            exists: true,
            contains: None,
            matches: None,
            mode: None,
        }
    }

    /// The probe with its `${NAME}` placeholders filled from `values`.
    pub fn filled(&self, values: &std::collections::BTreeMap<String, String>) -> FileProbe {
        let fill = |t: &str| crate::template::fill_template(t, values);
        FileProbe {
            path: fill(&self.path),
            contains: self.contains.as_deref().map(fill),
            ..self.clone()
        }
    }

    /// The mode as a number, when it is valid octal.
    pub fn mode_bits(&self) -> Option<u32> {
        self.mode
            .as_deref()
            .and_then(|m| u32::from_str_radix(m.trim_start_matches("0o"), 8).ok())
    }

    /// What it expects, in words.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!(
            "`{}` {}",
            self.path,
            if self.exists { "exists" } else { "is absent" }
        )];
        if let Some(c) = &self.contains {
            parts.push(format!("contains {c:?}"));
        }
        if let Some(m) = &self.matches {
            parts.push(format!("matches /{m}/"));
        }
        if let Some(m) = &self.mode {
            parts.push(format!("has mode {m}"));
        }
        parts.join(", ")
    }
}

fn yes() -> bool {
    true
}

/// What a `tcp` probe expects: `host:port` accepts a connection. `${NAME}` placeholders
/// in both are filled with the values in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpProbe {
    /// The host (`127.0.0.1`, `${DB_HOST}`).
    pub host: String,
    /// The port (`5432`, `"${DB_PORT}"`): a whole number from 1 to 65535, or a text.
    #[serde(deserialize_with = "string_or_number")]
    #[schemars(with = "StringOrNumber")]
    pub port: String,
}

/// What an `http` probe expects of a plain `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpProbe {
    /// The URL (`http://127.0.0.1:${APP_PORT}/health`).
    pub url: String,
    /// The status it must answer (default 200), from 100 to 599.
    #[serde(
        default = "ok_status",
        skip_serializing_if = "is_ok_status",
        deserialize_with = "http_status"
    )]
    pub status: u16,
    /// A text the body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// The longest one request may take (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
}

/// What a `process` probe expects: a process of the sandbox runs under this name (its
/// command name, as `ps` shows it, at most 15 characters compared).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProcessProbe {
    /// The process name (`postgres`, `redis-server`).
    pub name: String,
}

fn ok_status() -> u16 {
    200
}

fn is_ok_status(s: &u16) -> bool {
    *s == 200
}

/// A port written as a number or as a string (`"${DB_PORT}"`).
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)] // only its schema is used
enum StringOrNumber {
    Number(u16),
    Text(String),
}

/// An HTTP status: 100 to 599.
fn http_status<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let n = u16::deserialize(d)?;
    if (100..=599).contains(&n) {
        Ok(n)
    } else {
        Err(serde::de::Error::custom(format!(
            "status {n} is not an HTTP status: use 100 to 599"
        )))
    }
}

/// An exit code: 0 to 255, what a process can return.
fn exit_code<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    match Option::<i32>::deserialize(d)? {
        Some(n) if !(0..=255).contains(&n) => Err(serde::de::Error::custom(format!(
            "exit code {n} cannot happen: a process exits with 0 to 255"
        ))),
        other => Ok(other),
    }
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(u64),
        Text(String),
    }
    match Either::deserialize(d)? {
        Either::Number(n) if (1..=65535).contains(&n) => Ok(n.to_string()),
        Either::Number(n) => Err(serde::de::Error::custom(format!(
            "port {n} is out of range: use 1 to 65535"
        ))),
        Either::Text(t) => Ok(t),
    }
}

impl Probe {
    /// "a command check", for messages.
    fn words(&self) -> &'static str {
        match self {
            Probe::Command(_) => "a command check",
            Probe::Kube(_) => "a Kubernetes check",
            Probe::File(_) => "a file check",
            Probe::Tcp(_) => "a TCP check",
            Probe::Http(_) => "an HTTP check",
            Probe::Process(_) => "a process check",
        }
    }

    /// The probe with the `${NAME}` placeholders of its texts filled from `values` (a
    /// command probe is taken as written: its variables come from the environment).
    pub fn filled(&self, values: &std::collections::BTreeMap<String, String>) -> Probe {
        let fill = |t: &str| crate::template::fill_template(t, values);
        match self {
            Probe::File(f) => Probe::File(f.filled(values)),
            Probe::Tcp(t) => Probe::Tcp(TcpProbe {
                host: fill(&t.host),
                port: fill(&t.port),
            }),
            Probe::Http(h) => Probe::Http(HttpProbe {
                url: fill(&h.url),
                body_contains: h.body_contains.as_deref().map(fill),
                ..h.clone()
            }),
            Probe::Process(p) => Probe::Process(ProcessProbe {
                name: fill(&p.name),
            }),
            // A command takes its values from the environment; a Kubernetes check is
            // filled by the provider (its namespace).
            Probe::Command(_) | Probe::Kube(_) => self.clone(),
        }
    }
}

fn is_true(b: &bool) -> bool {
    *b
}

fn one() -> u32 {
    1
}

impl KubeCheck {
    /// `count` pods matching the label `selector` are Running and Ready.
    pub fn pods_ready(selector: impl Into<String>, count: u32) -> Self {
        KubeCheck::PodsReady {
            selector: selector.into(),
            count,
        }
    }

    /// The `kind` (`Deployment`, `StatefulSet`, `DaemonSet`) named `name` finished rolling out.
    pub fn rollout_complete(kind: impl Into<String>, name: impl Into<String>) -> Self {
        KubeCheck::RolloutComplete {
            kind: kind.into(),
            name: name.into(),
        }
    }

    /// The Service `name` has at least one ready endpoint.
    pub fn service_endpoints(name: impl Into<String>) -> Self {
        KubeCheck::ServiceEndpoints { name: name.into() }
    }

    /// The object exists.
    ///
    /// ```
    /// use runbook_core::{Check, KubeCheck};
    /// let check = Check::kube(KubeCheck::exists("v1", "Secret", "db-credentials"));
    /// assert_eq!(check.expectation(), "Secret/db-credentials exists");
    /// ```
    pub fn exists(
        api_version: impl Into<String>,
        kind: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        KubeCheck::Exists(KubeObjectRef::new(api_version, kind, name))
    }

    /// The object does not exist.
    pub fn absent(
        api_version: impl Into<String>,
        kind: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        KubeCheck::Absent(KubeObjectRef::new(api_version, kind, name))
    }
}

/// A reference to one Kubernetes object in the sandbox namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubeObjectRef {
    /// e.g. `v1`, `apps/v1`, `networking.k8s.io/v1`.
    pub api_version: String,
    /// e.g. `Secret`, `NetworkPolicy`.
    pub kind: String,
    /// Object name.
    pub name: String,
}

impl KubeObjectRef {
    /// A reference to the object `kind`/`name` of `api_version` (`v1`, `apps/v1`).
    pub fn new(
        api_version: impl Into<String>,
        kind: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        KubeObjectRef {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
        }
    }
}

/// What a check must see. Every condition given must hold; without any, exit code 0.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expect {
    /// Required exit code of a command probe, 0 to 255. When unset, 0.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "exit_code"
    )]
    pub exit_code: Option<i32>,
    /// A condition on standard output (compared without trailing whitespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<TextMatch>,
    /// A condition on standard error (compared without trailing whitespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<TextMatch>,
}

impl Expect {
    /// The expectation with the `${NAME}` placeholders of its `equals` and `contains`
    /// texts filled from `values` (a `matches` pattern is taken as written).
    ///
    /// ```
    /// use runbook_core::{Expect, TextMatch};
    /// let e = Expect { stdout: Some(TextMatch::Equals("port=${APP_PORT}".into())), ..Expect::default() };
    /// let values = [("APP_PORT".to_owned(), "9191".to_owned())].into();
    /// assert_eq!(e.filled(&values).stdout, Some(TextMatch::Equals("port=9191".into())));
    /// ```
    pub fn filled(&self, values: &std::collections::BTreeMap<String, String>) -> Expect {
        let fill = |m: &Option<TextMatch>| match m {
            Some(TextMatch::Equals(s)) => {
                Some(TextMatch::Equals(crate::template::fill_template(s, values)))
            }
            Some(TextMatch::Contains(s)) => Some(TextMatch::Contains(
                crate::template::fill_template(s, values),
            )),
            other => other.clone(),
        };
        Expect {
            exit_code: self.exit_code,
            stdout: fill(&self.stdout),
            stderr: fill(&self.stderr),
        }
    }

    /// The exit code the command must return (0 unless set).
    pub fn expected_exit_code(&self) -> i32 {
        self.exit_code.unwrap_or(0)
    }

    /// Whether the expectation says anything beyond "the command exited 0".
    pub fn inspects_output(&self) -> bool {
        self.stdout.is_some() || self.stderr.is_some()
    }
}

/// A condition on a text output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum TextMatch {
    /// The whole output, without trailing whitespace, equals this.
    Equals(String),
    /// The output contains this.
    Contains(String),
    /// The output matches this regular expression (Rust `regex` syntax).
    Matches(String),
}

impl TextMatch {
    /// The text or pattern the condition compares with.
    pub fn operand(&self) -> &str {
        match self {
            TextMatch::Equals(s) | TextMatch::Contains(s) | TextMatch::Matches(s) => s,
        }
    }

    /// "equals `Running`", for reports.
    pub fn describe(&self) -> String {
        match self {
            TextMatch::Equals(s) => format!("equals {s:?}"),
            TextMatch::Contains(s) => format!("contains {s:?}"),
            TextMatch::Matches(s) => format!("matches /{s}/"),
        }
    }
}

/// How long a check is retried. By default a check is tried once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retry {
    /// Keep trying until this much time has passed since the first attempt.
    pub within: Option<HumanDuration>,
    /// Pause between attempts (default 1s).
    pub interval: Option<HumanDuration>,
}

impl Retry {
    /// The default pause between attempts.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

    /// The least time an attempt gets, even once the `within` deadline has (nearly)
    /// passed: the last attempt still gets a chance to answer.
    pub const MIN_ATTEMPT: Duration = Duration::from_secs(1);

    /// The pause between attempts, defaulted.
    pub fn interval(&self) -> Duration {
        self.interval
            .map_or(Self::DEFAULT_INTERVAL, HumanDuration::as_duration)
    }

    /// The time limit of one attempt, `elapsed` after the first attempt started: with a
    /// `within` deadline, the time left until it, at least [`MIN_ATTEMPT`](Self::MIN_ATTEMPT);
    /// without one, `check_timeout` (the run's, [`DEFAULT_CHECK_TIMEOUT`] by default).
    ///
    /// The one rule for the engine and the package's scripts (whose `check` computes it in
    /// bash from the same `within`), so that an attempt ends where it ended in the sandbox.
    /// A `within` longer than `check_timeout` is not cut to it: it says the check may take
    /// that long (a `kubectl rollout status --timeout=3m` under `within: 5m`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use runbook_core::Check;
    /// let s = Duration::from_secs;
    /// let check = Check::command("true").within(s(3));
    /// assert_eq!(check.retry.attempt_limit(s(1), s(60)), s(2));
    /// assert_eq!(check.retry.attempt_limit(s(5), s(60)), s(1));
    /// assert_eq!(Check::command("true").retry.attempt_limit(s(5), s(60)), s(60));
    /// ```
    pub fn attempt_limit(&self, elapsed: Duration, check_timeout: Duration) -> Duration {
        match self.within {
            Some(within) => within
                .as_duration()
                .saturating_sub(elapsed)
                .max(Self::MIN_ATTEMPT),
            None => check_timeout,
        }
    }
}

impl Check {
    /// A check that runs a shell command. By default it expects exit code 0 and
    /// is tried once; add an output condition to make it a positive confirmation.
    pub fn command(run: impl Into<String>) -> Self {
        Check::new(Probe::Command(run.into()))
    }

    /// A typed Kubernetes check.
    ///
    /// ```
    /// use runbook_core::{Check, KubeCheck};
    /// let check = Check::kube(KubeCheck::pods_ready("app=db", 2));
    /// assert_eq!(check.expectation(), "2 pod(s) `app=db` Running and Ready");
    /// ```
    pub fn kube(check: KubeCheck) -> Self {
        Check::new(Probe::Kube(check))
    }

    /// A check of any probe, built from the probe itself (the probe builders below
    /// need no struct: [`Check::file`], [`Check::tcp`], [`Check::http`],
    /// [`Check::process`], [`Check::kube`]).
    pub fn new(probe: Probe) -> Self {
        Check {
            name: None,
            probe,
            expect: Expect::default(),
            retry: Retry::default(),
        }
    }

    /// A typed file check: by default, that the file at `path` (relative to the work
    /// directory; `${NAME}` placeholders are filled) exists. Evaluated without a process
    /// in the sandbox, as `test`/`grep`/`stat` in the scripts. Narrow it with
    /// [`absent`](Check::absent), [`contains`](Check::contains),
    /// [`matches`](Check::matches) and [`mode`](Check::mode).
    ///
    /// ```
    /// use runbook_core::Check;
    /// let check = Check::file("app/app.conf").contains("port=${APP_PORT}").mode("0600");
    /// assert_eq!(check.label(), "file app/app.conf");
    /// assert_eq!(check.expectation(), "`app/app.conf` exists, contains \"port=${APP_PORT}\", has mode 0600");
    /// let gone = Check::file("app/app.pid").absent();
    /// assert_eq!(gone.expectation(), "`app/app.pid` is absent");
    /// ```
    pub fn file(path: impl Into<String>) -> Self {
        Check::new(Probe::File(FileProbe::exists(path)))
    }

    /// A typed TCP check: `host:port` accepts a connection. Both may hold `${NAME}`
    /// placeholders, so the port is given as a number or as a text.
    ///
    /// ```
    /// use runbook_core::Check;
    /// assert_eq!(Check::tcp("127.0.0.1", 5432).label(), "tcp 127.0.0.1:5432");
    /// assert_eq!(Check::tcp("${DB_HOST}", "${DB_PORT}").label(), "tcp ${DB_HOST}:${DB_PORT}");
    /// ```
    pub fn tcp(host: impl Into<String>, port: impl ToString) -> Self {
        Check::new(Probe::Tcp(TcpProbe {
            host: host.into(),
            port: port.to_string(),
        }))
    }

    /// A typed HTTP check: the plain `http://` URL answers status 200 (change it with
    /// [`status`](Check::status); require a body text with
    /// [`body_contains`](Check::body_contains); limit one request with
    /// [`request_timeout`](Check::request_timeout)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use runbook_core::Check;
    /// let check = Check::http("http://127.0.0.1:${APP_PORT}/health")
    ///     .status(204)
    ///     .within(Duration::from_secs(30));
    /// assert_eq!(check.expectation(), "http://127.0.0.1:${APP_PORT}/health answers 204");
    /// ```
    pub fn http(url: impl Into<String>) -> Self {
        Check::new(Probe::Http(HttpProbe {
            url: url.into(),
            status: ok_status(),
            body_contains: None,
            timeout: None,
        }))
    }

    /// A typed process check: a process of the sandbox runs under `name` (its command
    /// name, as `ps` shows it).
    pub fn process(name: impl Into<String>) -> Self {
        Check::new(Probe::Process(ProcessProbe { name: name.into() }))
    }

    /// Of a [`file`](Check::file) check: the file must not exist.
    ///
    /// # Panics
    ///
    /// If the check's probe is not a file probe (a mistake in the code that builds it).
    pub fn absent(mut self) -> Self {
        self.file_probe("absent").exists = false;
        self
    }

    /// Of a [`file`](Check::file) check: the file must contain `text` (`${NAME}`
    /// placeholders are filled).
    ///
    /// # Panics
    ///
    /// If the check's probe is not a file probe.
    pub fn contains(mut self, text: impl Into<String>) -> Self {
        self.file_probe("contains").contains = Some(text.into());
        self
    }

    /// Of a [`file`](Check::file) check: the content must match the regular expression
    /// `pattern` (Rust `regex` syntax).
    ///
    /// # Panics
    ///
    /// If the check's probe is not a file probe.
    pub fn matches(mut self, pattern: impl Into<String>) -> Self {
        self.file_probe("matches").matches = Some(pattern.into());
        self
    }

    /// Of a [`file`](Check::file) check: the permission bits, in octal (`"0600"`).
    ///
    /// # Panics
    ///
    /// If the check's probe is not a file probe.
    pub fn mode(mut self, octal: impl Into<String>) -> Self {
        self.file_probe("mode").mode = Some(octal.into());
        self
    }

    /// Of an [`http`](Check::http) check: the status the URL must answer (default 200).
    ///
    /// # Panics
    ///
    /// If the check's probe is not an HTTP probe.
    pub fn status(mut self, status: u16) -> Self {
        self.http_probe("status").status = status;
        self
    }

    /// Of an [`http`](Check::http) check: a text the body must contain (`${NAME}`
    /// placeholders are filled).
    ///
    /// # Panics
    ///
    /// If the check's probe is not an HTTP probe.
    pub fn body_contains(mut self, text: impl Into<String>) -> Self {
        self.http_probe("body_contains").body_contains = Some(text.into());
        self
    }

    /// Of an [`http`](Check::http) check: the longest one request may take (default
    /// 10s; the whole check's deadline is [`within`](Check::within)).
    ///
    /// # Panics
    ///
    /// If the check's probe is not an HTTP probe.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.http_probe("request_timeout").timeout = Some(timeout.into());
        self
    }

    fn file_probe(&mut self, method: &str) -> &mut FileProbe {
        match &mut self.probe {
            Probe::File(f) => f,
            other => panic!(
                "Check::{method} applies to a file check (`Check::file`), not to {}",
                other.words()
            ),
        }
    }

    fn http_probe(&mut self, method: &str) -> &mut HttpProbe {
        match &mut self.probe {
            Probe::Http(h) => h,
            other => panic!(
                "Check::{method} applies to an HTTP check (`Check::http`), not to {}",
                other.words()
            ),
        }
    }

    /// Gives the check a human name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Requires this exit code (default 0).
    pub fn exit_code(mut self, code: i32) -> Self {
        self.expect.exit_code = Some(code);
        self
    }

    /// Requires stdout (without trailing whitespace) to equal `text`.
    pub fn stdout_equals(mut self, text: impl Into<String>) -> Self {
        self.expect.stdout = Some(TextMatch::Equals(text.into()));
        self
    }

    /// Requires stdout to contain `text`.
    pub fn stdout_contains(mut self, text: impl Into<String>) -> Self {
        self.expect.stdout = Some(TextMatch::Contains(text.into()));
        self
    }

    /// Requires stdout to match the regular expression `pattern`.
    pub fn stdout_matches(mut self, pattern: impl Into<String>) -> Self {
        self.expect.stdout = Some(TextMatch::Matches(pattern.into()));
        self
    }

    /// Requires stderr (without trailing whitespace) to equal `text`.
    pub fn stderr_equals(mut self, text: impl Into<String>) -> Self {
        self.expect.stderr = Some(TextMatch::Equals(text.into()));
        self
    }

    /// Requires stderr to contain `text`.
    pub fn stderr_contains(mut self, text: impl Into<String>) -> Self {
        self.expect.stderr = Some(TextMatch::Contains(text.into()));
        self
    }

    /// Requires stderr to match the regular expression `pattern`.
    pub fn stderr_matches(mut self, pattern: impl Into<String>) -> Self {
        self.expect.stderr = Some(TextMatch::Matches(pattern.into()));
        self
    }

    /// Retries the check until it passes or `deadline` has passed.
    pub fn within(mut self, deadline: Duration) -> Self {
        self.retry.within = Some(deadline.into());
        self
    }

    /// Sets the pause between attempts (default 1s).
    pub fn every(mut self, interval: Duration) -> Self {
        self.retry.interval = Some(interval.into());
        self
    }

    /// The check with the `${NAME}` placeholders of its probe ([`Probe::filled`]) and of
    /// its expectation ([`Expect::filled`]) filled from `values`: what it compares in a
    /// run, and what [`expectation`](Check::expectation) then says.
    ///
    /// ```
    /// use runbook_core::Check;
    /// let values = [("APP_PORT".to_owned(), "9191".to_owned())].into();
    /// let check = Check::tcp("127.0.0.1", "${APP_PORT}").filled(&values);
    /// assert_eq!(check.expectation(), "127.0.0.1:9191 accepts a connection");
    /// ```
    pub fn filled(&self, values: &std::collections::BTreeMap<String, String>) -> Check {
        Check {
            name: self.name.clone(),
            probe: self.probe.filled(values),
            expect: self.expect.filled(values),
            retry: self.retry,
        }
    }

    /// Whether the check positively confirms a result, rather than only that a command
    /// exited 0: a typed probe (it observes a state), or a command whose output is
    /// compared or whose expected exit code is not 0. The `exit-code-only` lint rule
    /// flags a check that repeats its step's command and is not positive.
    ///
    /// ```
    /// use runbook_core::Check;
    /// assert!(!Check::command("systemctl start app").is_positive());
    /// assert!(Check::command("systemctl is-active app").stdout_equals("active").is_positive());
    /// assert!(Check::command("helm status db").exit_code(1).is_positive());
    /// assert!(Check::tcp("127.0.0.1", 8080).is_positive());
    /// ```
    pub fn is_positive(&self) -> bool {
        match self.probe {
            Probe::Command(_) => {
                self.expect.inspects_output() || self.expect.expected_exit_code() != 0
            }
            _ => true,
        }
    }

    /// The command of a command probe.
    pub fn command_text(&self) -> Option<&str> {
        match &self.probe {
            Probe::Command(c) => Some(c),
            _ => None,
        }
    }

    /// A one-line description for reports: its name, or its probe.
    pub fn label(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        match &self.probe {
            Probe::Command(c) => c.lines().next().unwrap_or_default().to_owned(),
            Probe::Kube(k) => format!("{k:?}"),
            Probe::File(f) => format!("file {}", f.path),
            Probe::Tcp(t) => format!("tcp {}:{}", t.host, t.port),
            Probe::Http(h) => format!("http {}", h.url),
            Probe::Process(p) => format!("process {}", p.name),
        }
    }

    /// What the check expects, in words ("exit code 0, stdout equals \"Running\"").
    pub fn expectation(&self) -> String {
        let mut parts = Vec::new();
        match &self.probe {
            Probe::Command(_) => {
                parts.push(format!("exit code {}", self.expect.expected_exit_code()))
            }
            Probe::Kube(k) => parts.push(kube_expectation(k)),
            Probe::File(f) => parts.push(f.describe()),
            Probe::Tcp(t) => parts.push(format!("{}:{} accepts a connection", t.host, t.port)),
            Probe::Http(h) => parts.push(match &h.body_contains {
                Some(b) => format!(
                    "{} answers {} with a body containing {b:?}",
                    h.url, h.status
                ),
                None => format!("{} answers {}", h.url, h.status),
            }),
            Probe::Process(p) => parts.push(format!("a process named `{}` runs", p.name)),
        }
        if let Some(m) = &self.expect.stdout {
            parts.push(format!("stdout {}", m.describe()));
        }
        if let Some(m) = &self.expect.stderr {
            parts.push(format!("stderr {}", m.describe()));
        }
        parts.join(", ")
    }
}

fn kube_expectation(k: &KubeCheck) -> String {
    match k {
        KubeCheck::PodsReady { selector, count } => {
            format!("{count} pod(s) `{selector}` Running and Ready")
        }
        KubeCheck::RolloutComplete { kind, name } => format!("{kind}/{name} rollout complete"),
        KubeCheck::ServiceEndpoints { name } => format!("Service/{name} has ready endpoints"),
        KubeCheck::Exists(r) => format!("{}/{} exists", r.kind, r.name),
        KubeCheck::Absent(r) => format!("{}/{} does not exist", r.kind, r.name),
    }
}

/// The file form of a check: one probe key (`run` or `kube`) beside the common keys.
/// New probe kinds become new optional keys, so old files stay valid.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "Check")]
struct CheckFile {
    /// A short human name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// The command to run (exactly one of `run` and `kube`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run: Option<String>,
    /// A typed Kubernetes check (exactly one of `run`, `kube` and `file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kube: Option<KubeCheck>,
    /// A typed file check (exactly one probe key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<FileProbe>,
    /// A typed TCP check (exactly one probe key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tcp: Option<TcpProbe>,
    /// A typed HTTP check (exactly one probe key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http: Option<HttpProbe>,
    /// A typed process check (exactly one probe key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    process: Option<ProcessProbe>,
    /// What must be observed. Without it: exit code 0.
    #[serde(default, skip_serializing_if = "is_default_expect")]
    expect: Expect,
    /// Retry until this deadline (e.g. `60s`); without it the check is tried once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    within: Option<HumanDuration>,
    /// Pause between attempts (default `1s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interval: Option<HumanDuration>,
}

fn is_default_expect(e: &Expect) -> bool {
    *e == Expect::default()
}

impl TryFrom<CheckFile> for Check {
    type Error = String;

    fn try_from(f: CheckFile) -> Result<Self, String> {
        let mut probes: Vec<Probe> = Vec::new();
        probes.extend(f.run.map(Probe::Command));
        probes.extend(f.kube.map(Probe::Kube));
        probes.extend(f.file.map(Probe::File));
        probes.extend(f.tcp.map(Probe::Tcp));
        probes.extend(f.http.map(Probe::Http));
        probes.extend(f.process.map(Probe::Process));
        if probes.len() > 1 {
            return Err("a check has several probes (`run`, `kube`, `file`, `tcp`, `http`, `process`); give exactly one".into());
        }
        let Some(probe) = probes.pop() else {
            return Err("a check needs a probe: `run: <command>`, or one of `kube`, `file`, `tcp`, `http`, `process`".into());
        };
        Ok(Check {
            name: f.name,
            probe,
            expect: f.expect,
            retry: Retry {
                within: f.within,
                interval: f.interval,
            },
        })
    }
}

impl From<&Check> for CheckFile {
    fn from(c: &Check) -> Self {
        let mut file = CheckFile {
            name: c.name.clone(),
            run: None,
            kube: None,
            file: None,
            tcp: None,
            http: None,
            process: None,
            expect: c.expect.clone(),
            within: c.retry.within,
            interval: c.retry.interval,
        };
        match &c.probe {
            Probe::Command(run) => file.run = Some(run.clone()),
            Probe::Kube(k) => file.kube = Some(k.clone()),
            Probe::File(f) => file.file = Some(f.clone()),
            Probe::Tcp(t) => file.tcp = Some(t.clone()),
            Probe::Http(h) => file.http = Some(h.clone()),
            Probe::Process(p) => file.process = Some(p.clone()),
        }
        file
    }
}

impl Serialize for Check {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        CheckFile::from(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Check {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        CheckFile::deserialize(d)?
            .try_into()
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Check {
    fn schema_name() -> Cow<'static, str> {
        CheckFile::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = CheckFile::json_schema(generator);
        // Exactly one probe key.
        schema.insert(
            "oneOf".into(),
            serde_json::json!([
                { "required": ["run"] },
                { "required": ["kube"] },
                { "required": ["file"] },
                { "required": ["tcp"] },
                { "required": ["http"] },
                { "required": ["process"] }
            ]),
        );
        schema
    }
}
