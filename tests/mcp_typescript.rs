//! `runbook mcp` with clients the project did not write: the official TypeScript SDK
//! (`tests/mcp-ts/client.mjs`, which holds the assertions) and the MCP Inspector CLI.
//! They need Node.js and the pinned packages of `tests/mcp-ts/package-lock.json`
//! (`npm install --prefix tests/mcp-ts`), which `.ci/run` installs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// `tests/mcp-ts`, whose packages must be installed: the test fails otherwise.
fn clients() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp-ts");
    assert!(
        dir.join("node_modules/@modelcontextprotocol/sdk").is_dir(),
        "run `npm install --prefix tests/mcp-ts` first (it installs the pinned TypeScript SDK, Ajv and the Inspector)"
    );
    dir
}

#[test]
#[ignore = "needs Node.js and `npm install --prefix tests/mcp-ts` (.ci/run does both)"]
fn the_typescript_sdk_reads_every_result_and_error_cancels_and_follows_progress() {
    let clients = clients();
    let dir = common::workdir("runbook-mcp-ts-");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let output = Command::new("node")
        .arg(clients.join("client.mjs"))
        .arg(env!("CARGO_BIN_EXE_runbook"))
        .arg(dir.path().join("state"))
        .arg(&root)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "client.mjs failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no summary ({e}):\n{stdout}"));
    assert_eq!(summary["tools"], 14, "{summary:#}");
    assert_eq!(summary["storyVerdict"], "passed", "{summary:#}");
    assert_eq!(summary["timeoutRecord"], "cancelled", "{summary:#}");
    assert!(
        summary["cancelKilledWithinMs"].as_u64().unwrap() < 2000,
        "{summary:#}"
    );
    assert!(summary["progress"].as_u64().unwrap() >= 3, "{summary:#}");
    // The package the TypeScript client asked for is there.
    assert!(root.join("package/README.md").is_file());
}

#[test]
#[ignore = "needs Node.js and `npm install --prefix tests/mcp-ts` (.ci/run does both)"]
fn the_inspector_cli_lists_the_tools_and_validates_a_broken_runbook() {
    let clients = clients();
    let dir = common::workdir("runbook-mcp-inspector-");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(
        root.join("broken.yaml"),
        "apiVersion: runbook/v1\nkind: Runbook\nmetadata: { name: broken }\nstepz: []\n",
    )
    .unwrap();
    let inspector = |args: &[&str]| -> Value {
        let output = Command::new(clients.join("node_modules/.bin/mcp-inspector"))
            .arg("--cli")
            .arg(env!("CARGO_BIN_EXE_runbook"))
            .args(["mcp", "--state-dir"])
            .arg(dir.path().join("state"))
            .arg("--root")
            .arg(&root)
            .args(args)
            // The Inspector keeps a catalog under $HOME: not the developer's.
            .env("HOME", dir.path())
            .output()
            .expect("the inspector runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?}:\n{stdout}\n{stderr}");
        // Ajv warns on stderr about a schema it cannot compile strictly: there must be none.
        assert!(!stderr.contains("unknown format"), "{stderr}");
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?} ({e}):\n{stdout}"))
    };
    let listed = inspector(&["--method", "tools/list"]);
    assert_eq!(listed["tools"].as_array().unwrap().len(), 14, "{listed:#}");
    let validated = inspector(&[
        "--method",
        "tools/call",
        "--tool-name",
        "validate",
        "--tool-arg",
        "path=broken.yaml",
    ]);
    assert!(validated.get("error").is_none(), "{validated:#}");
    let result = &validated["structuredContent"];
    assert_eq!(result["valid"], false, "{validated:#}");
    assert_eq!(result["findings"][0]["code"], "parse", "{validated:#}");
}
