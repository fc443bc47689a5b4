// Finding 12 (deployment) at the processes: the worker's socket and its directory, the worker without an
// HSM module, and kms-api with a plaintext database URL where TLS is required. Each starts the real built
// service as a child process, with the settings a pod would give it.
import { spawn } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync, chmodSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startWorker } from "@kms/dev-stack";
import type { WorkerProcess } from "@kms/dev-stack";
import { startStack } from "../harness";
import type { Stack } from "../harness";

jest.setTimeout(60_000);

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "kms-deploy-proc-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The worker's environment without any PKCS#11 or software-root setting of this test process. */
function workerEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, KMS_DATA_DIR: path.join(dir, "data"), KMS_LOG_LEVEL: "warn", ...extra };
  for (const name of ["KMS_PKCS11_MODULE", "SOFTHSM2_CONF", "KMS_ALLOW_SOFTWARE_ROOT"]) if (!(name in extra)) delete env[name];
  return env;
}

/** The start's rejection message (the worker must not get ready). */
async function startFailure(env: NodeJS.ProcessEnv): Promise<string> {
  let worker: WorkerProcess | undefined;
  try {
    worker = await startWorker(env, { timeoutMs: 20_000 });
  } catch (err) {
    return (err as Error).message;
  }
  await worker.stop();
  throw new Error("the worker started");
}

const mode = (p: string) => (lstatSync(p).mode & 0o777).toString(8);

describe("the worker's socket", () => {
  // Reports the socket's mode from inside the worker at the moment its listener is bound, before any
  // code after the bind (the old chmod to 0600) can run: net.Server's "listening" event, first listener.
  const PROBE = `
    const fs = require("node:fs"), net = require("node:net"), path = require("node:path");
    const listen = net.Server.prototype.listen;
    net.Server.prototype.listen = function (...args) {
      this.prependListener("listening", () => {
        const a = this.address();
        if (typeof a !== "string") return;
        const m = (p) => (fs.lstatSync(p).mode & 0o777).toString(8);
        process.stderr.write("probe: bound " + a + " mode " + m(a) + " dir " + m(path.dirname(a)) + "\\n");
      });
      return listen.apply(this, args);
    };`;

  it("is 0600 from the moment it is bound, in a directory the worker made 0700, whatever the inherited umask", async () => {
    const probe = path.join(dir, "probe.js");
    writeFileSync(probe, PROBE);
    const socket = path.join(dir, "run", "kms", "hsm-worker.sock");
    const env = workerEnv({ KMS_ALLOW_SOFTWARE_ROOT: "true", KMS_WORKER_SOCKET: socket, NODE_OPTIONS: `--require ${probe}` });
    // A container runtime may start the worker with umask 0: then a socket bound without care is 0777.
    const umask = process.umask(0o000);
    let worker: WorkerProcess;
    try {
      const started = startWorker(env);
      process.umask(umask); // the child has forked with umask 0 by now
      worker = await started;
    } finally {
      process.umask(umask);
    }
    try {
      // Old code: "mode 777" here (chmod-ed to 0600 only after the bind).
      expect(worker.output().split("\n").filter((l) => l.startsWith("probe:"))).toEqual([`probe: bound ${socket} mode 600 dir 700`]);
      expect([mode(socket), mode(path.dirname(socket))]).toEqual(["600", "700"]);
    } finally {
      await worker.stop();
    }
  });

  it("is refused in a directory that others can write to, as an emptyDir's root is (0777)", async () => {
    const socketDir = path.join(dir, "shared");
    mkdirSync(socketDir);
    chmodSync(socketDir, 0o777);
    const socket = path.join(socketDir, "hsm-worker.sock");
    // Old code: the worker served there, and anyone who can write to the directory could unlink its socket
    // and bind their own, receiving kms-api's calls (plaintexts, data keys) in its place.
    const message = await startFailure(workerEnv({ KMS_ALLOW_SOFTWARE_ROOT: "true", KMS_WORKER_SOCKET: socket }));
    expect(message).toContain("hsm-worker exited with code 1 before it was ready");
    expect(message).toContain(
      `hsm-worker: KMS_WORKER_SOCKET: the socket's directory ${socketDir} must be a directory owned by this user with mode 0700 (it has mode 0777, owner ${process.getuid!()})`,
    );
    expect(existsSync(socket)).toBe(false);
  });
});

describe("the worker without a PKCS#11 module", () => {
  it("exits 1 naming KMS_PKCS11_MODULE unless KMS_ALLOW_SOFTWARE_ROOT=true, and writes no root key", async () => {
    // Old code: it started with a fresh software root key in $KMS_DATA_DIR/root-key (a pod's ephemeral /tmp).
    const message = await startFailure(workerEnv({ KMS_WORKER_SOCKET: path.join(dir, "run", "w.sock") }));
    expect(message).toContain("hsm-worker exited with code 1 before it was ready");
    expect(message).toContain(
      "hsm-worker: KMS_PKCS11_MODULE: is not set: set it to the HSM's PKCS#11 module, or set KMS_ALLOW_SOFTWARE_ROOT=true for a software root key under KMS_DATA_DIR (development and tests only)",
    );
    expect(existsSync(path.join(dir, "data", "root-key"))).toBe(false);
  });

  it("starts on the software root key with KMS_ALLOW_SOFTWARE_ROOT=true", async () => {
    const worker = await startWorker(workerEnv({ KMS_ALLOW_SOFTWARE_ROOT: "true", KMS_WORKER_SOCKET: path.join(dir, "run", "w.sock") }));
    try {
      expect(worker.status.description).toContain("software root key");
      expect(existsSync(path.join(dir, "data", "root-key"))).toBe(true);
    } finally {
      await worker.stop();
    }
  });
});

describe("kms-api and migrate with KMS_REQUIRE_DATABASE_TLS=true", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ hsm: false });
  });
  afterAll(() => stack?.stop());

  /** Exit code and stderr of `node <entry>` with the stack's kms-api environment plus `env`. */
  function run(entry: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [entry], { env: { ...stack.apiEnv, ...env }, stdio: ["ignore", "ignore", "pipe"] });
      let stderr = "";
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
      // Old code starts serving (or migrates): stop it after a while so that the assertion below reports it.
      const timer = setTimeout(() => child.kill("SIGTERM"), 15_000);
      child.once("close", (code) => {
        clearTimeout(timer);
        resolve({ code, stderr });
      });
    });
  }

  const apiEntry = path.join(__dirname, "..", "..", "services", "kms-api", "dist", "main.js");
  const migrateEntry = path.join(__dirname, "..", "..", "services", "kms-api", "dist", "migrate.js");

  it.each([
    ["no sslmode", (url: string) => url, "no sslmode"],
    ["sslmode=disable", (url: string) => `${url}?sslmode=disable`, "sslmode=disable"],
    // require/prefer encrypt but accept any certificate: a man in the middle still reads everything.
    ["sslmode=require", (url: string) => `${url}?sslmode=require`, "sslmode=require"],
    ["a later sslmode=prefer overriding verify-full", (url: string) => `${url}?sslmode=verify-full&sslmode=prefer`, "sslmode=prefer"],
  ])("refuse to start with %s", async (_name, makeUrl, shown) => {
    const env = { KMS_REQUIRE_DATABASE_TLS: "true", DATABASE_URL: makeUrl(stack.db.url.split("?")[0]!) };
    const expected = `DATABASE_URL: must set sslmode=verify-full when KMS_REQUIRE_DATABASE_TLS=true (it has ${shown})`;
    // Old code: kms-api served on the plaintext connection, and migrate applied the migrations over it.
    const [api, migrate] = await Promise.all([run(apiEntry, env), run(migrateEntry, env)]);
    expect([api.code, api.stderr]).toEqual([1, expect.stringContaining(expected)]);
    expect([migrate.code, migrate.stderr]).toEqual([1, `kms-api migrate: configuration error: ${expected}\n`]);
  });

  it("start as before on the same plaintext URL without the switch (the dev and test default)", async () => {
    const { api } = await stack.startReplica({ KMS_REQUIRE_DATABASE_TLS: "false" });
    expect(api.address).toMatch(/^127\.0\.0\.1:\d+$/);
  });
});
