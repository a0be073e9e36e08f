//! Typed probes mean the same in the sandbox (evaluated in-process) and in the package's
//! scripts (their shell form): on generated cases, both verdicts agree.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use proptest::prelude::*;
use runbook::exec::{
    CommandSpec, LocalProvider, OutputSink, Provider, ProvisionRequest, Sandbox, Stream,
};
use runbook::{FileProbe, Lifetime, Probe};

/// A fresh local sandbox, and a runtime to drive it from a synchronous test.
fn sandbox(name: &str) -> (tempfile::TempDir, tokio::runtime::Runtime, Box<dyn Sandbox>) {
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let provider = LocalProvider::with_root(root.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sandbox = rt
        .block_on(provider.provision(&ProvisionRequest::new(name, Lifetime::Ephemeral)))
        .unwrap();
    (root, rt, sandbox)
}

struct Discard;
impl OutputSink for Discard {
    fn output(&mut self, _: Stream, _: &[u8]) {}
}

/// Both verdicts for a file the sandbox user wrote with `content` and `mode`.
async fn verdicts(
    sandbox: &dyn Sandbox,
    content: &str,
    mode: u32,
    probe: &FileProbe,
) -> (bool, bool) {
    sandbox
        .write_file("case/file.txt", content.as_bytes())
        .await
        .unwrap();
    let chmod = CommandSpec {
        command: format!("chmod {mode:o} case/file.txt"),
        env: BTreeMap::new(),
        workdir: None,
        timeout: Duration::from_secs(10),
        errexit: true,
    };
    assert_eq!(
        sandbox.run(&chmod, &mut Discard).await.unwrap().code,
        Some(0)
    );
    let probe = Probe::File(probe.clone());
    let in_process = sandbox.probe(&probe).await.unwrap().satisfied;
    let shell = CommandSpec {
        command: runbook::render::probe_shell(&probe).unwrap(),
        ..chmod
    };
    let by_shell = sandbox
        .run(
            &CommandSpec {
                errexit: false,
                ..shell
            },
            &mut Discard,
        )
        .await
        .unwrap()
        .code
        == Some(0);
    (in_process, by_shell)
}

fn case() -> impl Strategy<Value = (String, u32, FileProbe)> {
    let text = "[a-c =\n]{0,24}";
    (
        text,
        prop::sample::select(vec![0o600u32, 0o640, 0o644, 0o755]),
        prop::option::of("[a-c =]{1,4}"),
        prop::option::of(prop::sample::select(vec!["^a", "b+", "c$", "a.c", "=\\s"])),
        prop::option::of(prop::sample::select(vec!["0600", "0640", "0644", "0755"])),
        prop::sample::select(vec!["case/file.txt", "case/other.txt", "case"]),
        any::<bool>(),
    )
        .prop_map(
            |(content, mode, contains, matches, want_mode, path, exists)| {
                (
                    content,
                    mode,
                    FileProbe {
                        path: path.into(),
                        exists,
                        contains,
                        matches: matches.map(str::to_owned),
                        mode: want_mode.map(str::to_owned),
                    },
                )
            },
        )
}

#[test]
fn file_checks_agree_in_process_and_in_the_scripts() {
    let (_root, rt, mut sandbox) = sandbox("probes");
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(200));
    runner
        .run(&case(), |(content, mode, probe)| {
            let (in_process, by_shell) =
                rt.block_on(verdicts(sandbox.as_ref(), &content, mode, &probe));
            prop_assert_eq!(
                in_process,
                by_shell,
                "{:?} on {:?} (mode {:o})",
                probe,
                content,
                mode
            );
            Ok(())
        })
        .unwrap();
    rt.block_on(sandbox.teardown()).unwrap();
}

#[test]
fn a_pattern_anchored_at_the_end_means_the_same_in_both() {
    let (_root, rt, mut sandbox) = sandbox("anchored");
    for (content, pattern) in [("abc\n", "c$"), ("abc", "c$"), ("a\nb\n", "^b")] {
        let probe = FileProbe {
            matches: Some(pattern.into()),
            ..FileProbe::exists("case/file.txt")
        };
        let (in_process, by_shell) =
            rt.block_on(verdicts(sandbox.as_ref(), content, 0o644, &probe));
        assert_eq!(in_process, by_shell, "/{pattern}/ on {content:?}");
    }
    rt.block_on(sandbox.teardown()).unwrap();
}
