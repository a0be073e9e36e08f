//! The public surface of the library crates is the committed list in
//! `docs/public-api.txt`: a new `pub` item, method, field or re-export (or one that goes)
//! fails this test until the list is updated on purpose, in the same change.
//!
//! `cargo public-api` needs a nightly toolchain (rustdoc's JSON output is unstable), so the
//! list is read from the sources on stable: every `pub` (not `pub(crate)`) item, method,
//! field and `pub use` of `runbook-core`, `runbook-exec`, `runbook-render` and the facade
//! (not its CLI in `src/bin`, not `#[cfg(test)]` modules), with the type it belongs to. It
//! errs on the side of listing: a `pub` item of a private module is listed too.
//!
//! After a deliberate change: `UPDATE_PUBLIC_API=1 cargo test --test public_api`, and
//! review the diff of `docs/public-api.txt`.

use std::path::{Path, PathBuf};

const LIST: &str = "docs/public-api.txt";
const CRATES: &[&str] = &[
    "runbook-core/src",
    "runbook-exec/src",
    "runbook-render/src",
    "src",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            // The CLI is a binary, not library surface.
            if !path.ends_with("src/bin") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The first identifier of `text`.
fn ident(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The type an `impl` line is about: `impl<T> Foo<T> for Bar {` -> `Bar`.
fn impl_target(line: &str) -> String {
    let mut rest = line.trim_start_matches("impl");
    if rest.starts_with('<') {
        let mut depth = 0;
        for (i, c) in rest.char_indices() {
            match c {
                '<' => depth += 1,
                '>' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                rest = &rest[i + 1..];
                break;
            }
        }
    }
    let rest = rest.split(" for ").last().unwrap_or(rest).trim();
    let rest = rest.trim_start_matches('&').trim_start_matches("dyn ");
    // `crate::Runbook` -> `Runbook`.
    let path = rest.split(['<', ' ', '{']).next().unwrap_or(rest);
    path.rsplit("::").next().unwrap_or(path).to_owned()
}

/// The public items of one file, as `kind name` lines.
fn items(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut context = String::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        let indented = line.len() != trimmed.len();
        i += 1;
        if trimmed == "#[cfg(test)]"
            && lines
                .get(i)
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            break;
        }
        if trimmed.starts_with("impl") && !trimmed.starts_with("impl_") {
            context = impl_target(trimmed);
            continue;
        }
        // A private or crate-visible type still names the `pub` fields below it.
        let declared = trimmed
            .strip_prefix("pub(")
            .and_then(|r| r.split_once(") ").map(|(_, r)| r))
            .unwrap_or(trimmed);
        for kind in ["struct ", "enum ", "trait "] {
            if let Some(name) = declared.strip_prefix(kind) {
                context = ident(name).to_owned();
            }
        }
        let Some(rest) = trimmed.strip_prefix("pub ") else {
            continue;
        };
        let rest = ["const fn ", "async fn ", "unsafe fn "]
            .iter()
            .find_map(|p| rest.strip_prefix(p).map(|r| format!("fn {r}")))
            .unwrap_or_else(|| rest.to_owned());
        let rest = rest.as_str();
        let (kind, after) = match rest.split_once(' ') {
            Some((k, a)) => (k, a),
            None => ("", rest),
        };
        let owner = |name: &str| {
            if indented && !context.is_empty() {
                format!("{context}::{name}")
            } else {
                name.to_owned()
            }
        };
        match kind {
            "use" => {
                let mut statement = after.to_owned();
                while !statement.contains(';') && i < lines.len() {
                    statement.push(' ');
                    statement.push_str(lines[i].trim());
                    i += 1;
                }
                let statement = statement
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .replace("{ ", "{")
                    .replace(", }", "}")
                    .replace(" }", "}");
                out.push(format!("use {statement}"));
            }
            "fn" => out.push(format!("fn {}", owner(ident(after)))),
            "struct" | "enum" | "trait" | "type" => {
                context = ident(after).to_owned();
                out.push(format!("{kind} {context}"));
            }
            "const" | "static" => out.push(format!("{kind} {}", owner(ident(after)))),
            "mod" => out.push(format!("mod {}", ident(after))),
            _ if rest.contains(':') && ident(rest).len() == rest.find(':').unwrap_or(0) => {
                out.push(format!("field {context}.{}", ident(rest)));
            }
            _ => {}
        }
    }
    out
}

fn surface(root: &Path) -> String {
    let mut text = String::from(
        "# The public surface of the library crates (checked by tests/public_api.rs).\n\
         # After a deliberate change: UPDATE_PUBLIC_API=1 cargo test --test public_api\n",
    );
    for dir in CRATES {
        let mut files = Vec::new();
        rust_files(&root.join(dir), &mut files);
        for file in files {
            let source = std::fs::read_to_string(&file).unwrap();
            let items = items(&source);
            if items.is_empty() {
                continue;
            }
            let name = file.strip_prefix(root).unwrap().display().to_string();
            text.push_str(&format!("\n{name}\n"));
            for item in items {
                text.push_str(&format!("  {item}\n"));
            }
        }
    }
    text
}

#[test]
fn the_public_surface_is_the_committed_list() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let now = surface(root);
    let path = root.join(LIST);
    if std::env::var_os("UPDATE_PUBLIC_API").is_some() {
        std::fs::write(&path, &now).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != now {
        let old: Vec<&str> = committed.lines().collect();
        let new: Vec<&str> = now.lines().collect();
        let added: Vec<&&str> = new.iter().filter(|l| !old.contains(l)).collect();
        let removed: Vec<&&str> = old.iter().filter(|l| !new.contains(l)).collect();
        panic!(
            "the public surface changed.\nadded: {added:#?}\nremoved: {removed:#?}\n\
             If this is deliberate: UPDATE_PUBLIC_API=1 cargo test --test public_api, \
             and commit {LIST}"
        );
    }
}

#[test]
fn the_reader_sees_items_methods_fields_and_re_exports() {
    let source = "\
pub use a::{B,
    C};
pub struct Check {
    pub name: Option<String>,
    probe: Probe,
}
impl Check {
    pub fn file(path: &str) -> Self { todo!() }
    pub(crate) fn hidden() {}
    fn private() {}
}
impl<T: Clone> From<T> for Check {
    fn from(_: T) -> Self { todo!() }
}
pub const fn free() {}
#[cfg(test)]
mod tests {
    pub fn helper() {}
}
";
    assert_eq!(
        items(source),
        [
            "use a::{B, C};",
            "struct Check",
            "field Check.name",
            "fn Check::file",
            "fn free",
        ]
    );
}
