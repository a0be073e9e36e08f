// Drives `runbook mcp` with the official TypeScript SDK (`Client.callTool`), as most agent
// authors do, and compiles every tool schema with Ajv in strict mode. Run by
// tests/mcp_typescript.rs: `node client.mjs SERVER STATE_DIR ROOT`. Every assertion is
// here; the last line printed is a JSON summary the Rust test checks too.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import Ajv from "ajv";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const [server, state, root] = process.argv.slice(2);
const summary = {};

const transport = new StdioClientTransport({
  command: server,
  args: ["mcp", "--state-dir", state, "--root", root],
  env: { PATH: process.env.PATH },
  stderr: "ignore",
});
const client = new Client({ name: "runbook-ts-test", version: "1.0.0" });
await client.connect(transport);

// ---- every schema compiles in Ajv's strict mode, as draft-07 (what the SDK uses) and 2020-12
const { tools } = await client.listTools();
for (const Validator of [Ajv, Ajv2020]) {
  // Union types (`["string", "null"]`) are how JSON Schema says "optional"; strict mode
  // asks for them to be allowed explicitly.
  const ajv = new Validator({ strict: true, allowUnionTypes: true });
  addFormats(ajv);
  for (const tool of tools) {
    for (const schema of [tool.inputSchema, tool.outputSchema]) {
      assert.doesNotThrow(() => ajv.compile(schema), `${tool.name}: ${Validator.name}`);
    }
  }
}
summary.tools = tools.length;
// `amend`'s checks have the runbook's own Check shape: `kube: null` beside `run` is no
// second probe (as runbook.schema.json says), two probes are refused.
{
  const ajv = new Ajv({ strict: true, allowUnionTypes: true });
  addFormats(ajv);
  const amend = ajv.compile(tools.find((t) => t.name === "amend").inputSchema);
  const args = (check) => ({ session: "s", step: "x", verify: [check], cause: "c", fix: "f" });
  assert.ok(amend(args({ run: "true", kube: null })), JSON.stringify(amend.errors));
  assert.ok(!amend(args({ run: "true", file: { path: "x" } })), "two probes accepted");
}

/** The error a tool call returned: `isError`, JSON text, no structured content. */
function toolError(result) {
  assert.equal(result.isError, true, JSON.stringify(result));
  assert.equal(result.structuredContent, undefined);
  return JSON.parse(result.content[0].text).error;
}

/** Calls a tool that must succeed; the SDK has checked it against the output schema. */
async function ok(name, args, options) {
  const result = await client.callTool({ name, arguments: args }, undefined, options);
  assert.notEqual(result.isError, true, `${name}: ${JSON.stringify(result.content)}`);
  return result.structuredContent;
}

// ---- a misspelt key: the findings are read, not thrown
writeFileSync(
  join(root, "broken.yaml"),
  "apiVersion: runbook/v1\nkind: Runbook\nmetadata: { name: broken }\nstepz: []\n",
);
const broken = await ok("validate", { path: "broken.yaml" });
assert.equal(broken.valid, false);
assert.equal(broken.findings[0].code, "parse");
assert.match(broken.findings[0].message, /stepz/);
summary.parseFinding = broken.findings[0].message;

// ---- bad arguments: the agent reads error.kind and the argument's name
const badArguments = [
  ["run_next", {}, "session"],
  ["run_next", { sesion: "x" }, "sesion"],
  ["run_next", { session: 5 }, "session"],
  ["run_next", { session: "no-such-session" }, "session"],
  ["session_start", { runbook: "x", lifetime: "forever" }, "lifetime"],
];
for (const [name, args, argument] of badArguments) {
  const error = toolError(await client.callTool({ name, arguments: args }));
  assert.equal(error.kind, "invalid_argument", JSON.stringify(error));
  assert.equal(error.argument, argument, JSON.stringify(error));
  assert.ok(error.message.length > 0);
}
summary.badArguments = badArguments.length;

// ---- protocol errors: an unknown tool, malformed params
for (const params of [{ name: "no_such_tool", arguments: {} }, { arguments: "not an object" }]) {
  await assert.rejects(
    client.request({ method: "tools/call", params }, CallToolResultSchema),
    (e) => e instanceof McpError && e.code === -32602,
  );
}

// ---- the two-step story: a step fails, is amended, retried, and the package written
const story = `apiVersion: runbook/v1
kind: Runbook
metadata: { name: ts-story }
steps:
  - id: write
    title: Write a file
    run: echo one > one.txt
    verify:
      - run: cat one.txt
        expect: { stdout: { contains: one } }
    rollback: { run: rm -f one.txt }
  - id: serve
    title: Serve it
    run: "echo 'error: port 9 is taken' >&2; exit 3"
    readOnly: true
    verify:
      - run: "true"
`;
const started = await ok("session_start", { runbook: story, lifetime: "session" });
const session = started.session;
assert.equal((await ok("run_next", { session })).step.status, "passed");
const failed = await ok("run_next", { session });
assert.equal(failed.step.status, "failed");
assert.equal(failed.step.attempts[0].failureKind.kind, "exitCode");
await ok("amend", {
  session,
  step: "serve",
  run: "echo serving",
  cause: "the draft exited on purpose",
  fix: "serve for real",
});
assert.equal((await ok("retry", { session })).step.status, "passed");
assert.equal((await ok("run_next", { session })).done, true);
const finished = await ok("finish", { session, out: "package", rehearse: false });
assert.equal(finished.verdict, "passed");
assert.ok(finished.files.includes("README.md"), JSON.stringify(finished.files));
summary.storyVerdict = finished.verdict;

/** Pids of live processes whose command line contains `needle`. */
function processesWith(needle) {
  return readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, "utf8");
        const cmdline = readFileSync(`/proc/${p}/cmdline`, "utf8").replaceAll("\0", " ");
        return cmdline.includes(needle) && !stat.split(") ")[1].startsWith("Z");
      } catch {
        return false;
      }
    });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function oneStep(name, run) {
  return `apiVersion: runbook/v1
kind: Runbook
metadata: { name: ${name} }
steps:
  - id: long
    title: A long step
    run: "${run}"
    readOnly: true
    verify:
      - run: "true"
`;
}

// ---- cancellation: the AbortSignal kills the step's process and records it as cancelled
{
  const { session } = await ok("session_start", {
    runbook: oneStep("ts-cancel", "sleep 313131"),
    lifetime: "session",
  });
  const abort = new AbortController();
  const call = client.callTool({ name: "run_next", arguments: { session } }, undefined, {
    signal: abort.signal,
  });
  await sleep(1000);
  // The step's shell (the loader, whose arguments hold the command) and its `sleep`.
  assert.ok(processesWith("sleep 313131").length >= 1, "the step runs");
  abort.abort("the agent changed its mind");
  await assert.rejects(call);
  const aborted = Date.now();
  while (processesWith("sleep 313131").length > 0) {
    assert.ok(Date.now() - aborted < 2000, "the step's process outlived the cancel by 2 s");
    await sleep(50);
  }
  summary.cancelKilledWithinMs = Date.now() - aborted;
  // The record is there, as cancelled, and the next call delivers it instead of running.
  let status = await ok("session_status", { session });
  for (let i = 0; !status.lateStep && i < 100; i++) {
    await sleep(50);
    status = await ok("session_status", { session });
  }
  assert.equal(status.lateStep.attempts[0].failureKind.kind, "cancelled");
  const late = await ok("run_next", { session });
  assert.equal(late.late, true);
  assert.equal(late.step.status, "failed");
  assert.equal(late.step.attempts[0].failureKind.kind, "cancelled");
  summary.cancelled = late.step.attempts[0].failure;
  await ok("sandbox_destroy", { sandbox: session });
}

// ---- a request timeout: the SDK gives up (and cancels); the record is not lost
{
  const { session } = await ok("session_start", {
    runbook: oneStep("ts-timeout", "sleep 323232"),
    lifetime: "session",
  });
  await assert.rejects(
    client.callTool({ name: "run_next", arguments: { session } }, undefined, { timeout: 1000 }),
    (e) => e instanceof McpError && e.code === -32001,
  );
  let status = await ok("session_status", { session });
  for (let i = 0; !status.lateStep && i < 100; i++) {
    await sleep(50);
    status = await ok("session_status", { session });
  }
  assert.ok(status.lateStep, JSON.stringify(status));
  assert.equal(status.steps[0].status, "failed");
  summary.timeoutRecord = status.lateStep.attempts[0].failureKind.kind;
  await ok("sandbox_destroy", { sandbox: session });
}

// ---- progress notifications during a 5 s step
{
  const { session } = await ok("session_start", {
    runbook: oneStep("ts-progress", "for i in 1 2 3 4 5; do echo tick $i; sleep 1; done"),
    lifetime: "session",
  });
  const progress = [];
  const ran = await ok(
    "run_next",
    { session },
    { onprogress: (p) => progress.push(p), timeout: 60000 },
  );
  assert.equal(ran.step.status, "passed");
  assert.ok(progress.length >= 3, JSON.stringify(progress));
  assert.ok(progress.length <= 30, `more than the bounded rate: ${progress.length}`);
  for (let i = 1; i < progress.length; i++) {
    assert.ok(progress[i].progress > progress[i - 1].progress, "progress increases");
  }
  assert.ok(progress.some((p) => /started/.test(p.message)), JSON.stringify(progress));
  summary.progress = progress.length;
  await ok("sandbox_destroy", { sandbox: session });
}

await client.close();
console.log(JSON.stringify(summary));
