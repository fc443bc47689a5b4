// A second-language client: Python stubs generated from proto/ by a plain protoc, run against the real
// stack (examples/python/smoke.py). Proves the API works for clients that never saw our TypeScript.
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { startStack } from "../harness";
import type { Stack } from "../harness";

const run = promisify(execFile);
const repo = path.resolve(__dirname, "../..");

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.stop();
});

it("passes the Python smoke client, HSM keys required", async () => {
  const stubs = mkdtempSync(path.join(os.tmpdir(), "kms-py-"));
  await run("bash", [path.join(repo, "examples/python/generate.sh"), stubs], { cwd: repo });
  // Debian's python3-grpcio is visible to /usr/bin/python3 only (not to a pyenv python3 on PATH).
  const { stdout } = await run("/usr/bin/python3", [path.join(repo, "examples/python/smoke.py"), stack.address, stubs, "--require-hsm"], {
    cwd: repo,
    timeout: 60_000,
  });
  const summary = stdout.trim().split("\n").pop();
  expect(summary).toMatch(/^\d+ passed, 0 failed$/);
  expect(Number(summary?.split(" ")[0])).toBeGreaterThanOrEqual(15);
});
