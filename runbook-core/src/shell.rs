//! The shell form of things the runbook says in data: quoting, and each typed probe as
//! the portable shell command that observes it. One meaning per probe: the package's
//! scripts run exactly this, and so does a sandbox that must observe a probe from inside
//! (the local provider in a network namespace).

use std::fmt::Write;

use crate::{FileProbe, HttpProbe, Probe};

/// `text` as one single-quoted shell word: nothing in it expands.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `text` as one shell word whose `${NAME}` placeholders expand from the environment (the
/// target's values), everything else literal.
///
/// ```
/// assert_eq!(runbook_core::shell::expanding("app/${NAME}.conf"), r#"'app/'"${NAME}"'.conf'"#);
/// ```
pub fn expanding(text: &str) -> String {
    let mut out = String::new();
    let mut last = 0;
    for r in crate::template::template_references(text) {
        if r.offset > last {
            out.push_str(&quote(&text[last..r.offset]));
        }
        let _ = write!(out, "\"${{{}}}\"", r.name);
        last = r.offset + r.name.len() + 3;
    }
    if last < text.len() || out.is_empty() {
        out.push_str(&quote(&text[last..]));
    }
    out
}

impl Probe {
    /// The shell form of a typed probe (exit 0 when it holds): `test`, `grep` and `stat`
    /// for a file, bash's `/dev/tcp` for a port, `curl` for a URL (its status, its body
    /// text, its timeout), `/proc/*/comm` (read by bash, its own shells skipped) for a
    /// process. `None` for a command (it is its
    /// own shell) and for a Kubernetes check (it needs the runbook's namespace: see the
    /// scripts).
    ///
    /// ```
    /// use runbook_core::{FileProbe, Probe};
    /// let shell = Probe::File(FileProbe::exists("app/${NAME}.conf")).shell();
    /// assert_eq!(shell.as_deref(), Some(r#"test -e 'app/'"${NAME}"'.conf'"#));
    /// ```
    pub fn shell(&self) -> Option<String> {
        Some(match self {
            Probe::Command(_) | Probe::Kube(_) => return None,
            Probe::File(f) => file_command(f),
            Probe::Tcp(t) => format!(
                "timeout 5 bash -c 'exec 3<>\"/dev/tcp/$0/$1\"' {} {}",
                expanding(&t.host),
                expanding(&t.port)
            ),
            Probe::Http(h) => http_command(h),
            // The kernel's command name, at most 15 characters, as the sandbox compares it;
            // read by bash itself, and the shells running this skipped, so that the
            // check never finds its own `grep` or `bash`.
            Probe::Process(p) => format!(
                "(for p in /proc/[0-9]*; do case ${{p#/proc/}} in \"$$\"|\"$BASHPID\") continue ;; esac; \
                 read -r c 2>/dev/null < \"$p/comm\" && [ \"$c\" = {} ] && exit 0; done; exit 1)",
                expanding(&p.name.chars().take(15).collect::<String>())
            ),
        })
    }
}

/// A `file` probe as portable shell: `test`, `grep` and `stat`, relative to the work
/// directory.
fn file_command(f: &FileProbe) -> String {
    let path = expanding(&f.path);
    if !f.exists {
        return format!("test ! -e {path}");
    }
    let mut parts = vec![format!("test -e {path}")];
    if let Some(bits) = f.mode_bits() {
        parts.push(format!("test \"$(stat -c %a {path})\" = '{bits:o}'"));
    }
    if let Some(c) = &f.contains {
        parts.push(format!("grep -qF -- {} {path}", expanding(c)));
    }
    if let Some(m) = &f.matches {
        parts.push(format!("grep -qzP -- {} {path}", quote(m)));
    }
    parts.join(" && ")
}

/// An `http` probe as `curl` (needed on the target for these checks only).
fn http_command(h: &HttpProbe) -> String {
    let secs = h.timeout.map_or(10, |t| t.as_duration().as_secs().max(1));
    let mut text = format!(
        "body=$(mktemp) && code=$(curl -sS -o \"$body\" -w '%{{http_code}}' --max-time {secs} -- {}) && test \"$code\" = '{}'",
        expanding(&h.url),
        h.status
    );
    if let Some(b) = &h.body_contains {
        text.push_str(&format!(" && grep -qF -- {} \"$body\"", expanding(b)));
    }
    text.push_str("; rc=$?; rm -f \"$body\"; exit \"$rc\"");
    text
}

#[cfg(test)]
mod tests {
    use crate::{Probe, ProcessProbe};

    /// The process form run by bash: it finds a process by its command name, and never
    /// the shell that runs it (a check for `bash` or `grep` passed on its own before).
    #[test]
    fn the_process_form_finds_a_process_by_name_and_not_itself() {
        let dir = std::env::temp_dir().join(format!("rb-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let program = dir.join("rbprobe-sleeper");
        std::fs::copy("/bin/sleep", &program).unwrap();
        let check = |name: &str| {
            let form = Probe::Process(ProcessProbe { name: name.into() })
                .shell()
                .unwrap();
            std::process::Command::new("bash")
                .args(["-c", &form])
                .status()
                .unwrap()
                .success()
        };
        assert!(!check("rbprobe-sleeper"));
        let mut child = std::process::Command::new(&program)
            .arg("30")
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let found = check("rbprobe-sleeper");
        child.kill().unwrap();
        child.wait().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(found);
        assert!(!check("rb-no-such-proc"));
    }
}
