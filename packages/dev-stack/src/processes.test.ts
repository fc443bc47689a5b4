import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { hsm } from "@kms/proto/internal";
import { startApi, startWorker, workerSocketPath } from "./processes";

// Fakes of the two services (plain scripts): these tests cover the launcher, not the services.
const fixture = (name: string) => path.join(__dirname, "..", "fixtures", name);
jest.setTimeout(20_000);

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "kms-proc-test-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("workerSocketPath", () => {
  it("follows KMS_WORKER_SOCKET, else $KMS_DATA_DIR/run/hsm-worker.sock", () => {
    expect(workerSocketPath({ KMS_WORKER_SOCKET: "/x/w.sock", KMS_DATA_DIR: "/d" })).toBe("/x/w.sock");
    expect(workerSocketPath({ KMS_DATA_DIR: "/d" })).toBe("/d/run/hsm-worker.sock");
    expect(workerSocketPath({}, "/repo")).toBe("/repo/.kms-data/run/hsm-worker.sock");
  });
});

describe("startWorker", () => {
  it("resolves once the socket answers GetStatus, and stops with SIGTERM", async () => {
    const socket = path.join(dir, "w.sock");
    const worker = await startWorker({ ...process.env, KMS_WORKER_SOCKET: socket }, { entry: fixture("fake-worker.js") });
    expect(worker.status.backend).toBe(hsm.Backend.SOFTWARE_ROOT);
    expect(worker.status.description).toBe("fake");
    expect(worker.socketPath).toBe(socket);
    expect(worker.pid).toBe(worker.child.pid);
    await expect(worker.stop()).resolves.toBe(0);
    expect(worker.output()).toContain("fake-worker ready");
  });

  it("rejects with the output's tail when the worker exits before it is ready", async () => {
    const start = startWorker(
      { ...process.env, KMS_WORKER_SOCKET: path.join(dir, "never.sock"), FAKE_MODE: "crash" },
      { entry: fixture("fake-worker.js") },
    );
    await expect(start).rejects.toThrow(
      "hsm-worker exited with code 2 before it was ready; its output:\nfake-worker: cannot open PKCS#11 module",
    );
  });
});

describe("startApi", () => {
  it("takes the bound address from the 'kms-api listening' line and keeps the output", async () => {
    const api = await startApi({ ...process.env }, { entry: fixture("fake-api.js") });
    expect(api.address).toBe("127.0.0.1:45678");
    await expect(api.stop()).resolves.toBe(0);
    expect(api.output()).toBe(
      ["starting up", JSON.stringify({ level: "info", msg: "kms-api listening", address: "127.0.0.1:45678" }), "draining"].join("\n"),
    );
    await expect(api.exited).resolves.toBe(0);
    await expect(api.stop()).resolves.toBe(0); // stopping twice is harmless
  });

  it("rejects with the stderr tail when kms-api exits first", async () => {
    await expect(startApi({ ...process.env, FAKE_MODE: "crash" }, { entry: fixture("fake-api.js") })).rejects.toThrow(
      "kms-api exited with code 3 before it was ready; its output:\nConfigError: DATABASE_URL: is required",
    );
  });

  it("rejects after the timeout and does not leave the process behind", async () => {
    const start = startApi({ ...process.env, FAKE_MODE: "silent" }, { entry: fixture("fake-api.js"), timeoutMs: 500 });
    await expect(start).rejects.toThrow("kms-api did not get ready within 500 ms; its output:\nstarting up");
    // No child of this process runs the fake any more (pgrep exits 1 when nothing matches).
    expect(spawnSync("pgrep", ["-P", String(process.pid), "-f", "fake-api.js"]).status).toBe(1);
  });

  it("stop() falls back to SIGKILL after the grace period", async () => {
    const api = await startApi({ ...process.env, FAKE_MODE: "stubborn" }, { entry: fixture("fake-api.js") });
    const started = Date.now();
    await expect(api.stop(300)).resolves.toBeNull();
    expect(api.child.signalCode).toBe("SIGKILL");
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  });
});
