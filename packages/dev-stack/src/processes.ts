// Starts the two services as child processes: the one implementation that the dev stack, the
// integration tests and the benchmark share. A start resolves once the service answers (the worker's
// GetStatus over its socket; kms-api's "kms-api listening" log line) and rejects with the tail of the
// child's output if it exits first or does not get ready in time.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { VARIABLES } from "@kms/config";
import { createPromiseClient } from "@kms/proto";
import { hsm } from "@kms/proto/internal";

export interface ServiceProcess {
  /** "hsm-worker" or "kms-api". */
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves when the process has exited and its output is read: the exit code, or null if a signal ended it. */
  readonly exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL if it is still running after the grace period. Resolves as `exited`. */
  stop(graceMs?: number): Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
  /** The last ~200 lines of stdout and stderr, interleaved as they came: for failure messages. */
  output(): string;
}

export interface WorkerProcess extends ServiceProcess {
  /** The worker's answer to the GetStatus call that showed it ready. */
  readonly status: hsm.GetStatusResponse;
  readonly socketPath: string;
}

export interface ApiProcess extends ServiceProcess {
  /** host:port the server actually bound (KMS_LISTEN may ask for port 0). */
  readonly address: string;
  /** The AWS-compatible API's endpoint (http(s)://host:port) when KMS_AWS_LISTEN turned it on. */
  readonly awsEndpoint: string | undefined;
}

export interface StartOptions {
  /** Mirror the child's output to this process's stdout/stderr, each line prefixed "[name] ". */
  echo?: boolean;
  /** How long to wait for the service to get ready. Default 30 s. */
  timeoutMs?: number;
  /** Default grace period of stop(). Default 15 s (kms-api drains for KMS_SHUTDOWN_GRACE_MS, 10 s by default). */
  graceMs?: number;
  /**
   * Run the child in a process group of its own, so that a Ctrl-C in the terminal reaches only the parent,
   * which then stops the services in order. The dev stack sets it; tests leave it off.
   */
  ownProcessGroup?: boolean;
  /** Script to run instead of the service's dist/main.js (tests use fakes). */
  entry?: string;
  /** Node options for the child that NODE_OPTIONS refuses, e.g. --cpu-prof (the profiling benchmark). */
  nodeArgs?: string[];
  cwd?: string;
}

const OUTPUT_LINES = 200;
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_GRACE_MS = 15_000;

/** The built entry point of a workspace service, e.g. services/hsm-worker/dist/main.js. */
export function serviceEntry(pkg: "@kms/hsm-worker" | "@kms/kms-api"): string {
  return path.join(path.dirname(require.resolve(`${pkg}/package.json`)), "dist", "main.js");
}

/** The worker's socket as the services compute it: KMS_WORKER_SOCKET, else $KMS_DATA_DIR/run/hsm-worker.sock. */
export function workerSocketPath(env: NodeJS.ProcessEnv, cwd = process.cwd()): string {
  if (env.KMS_WORKER_SOCKET) return path.resolve(cwd, env.KMS_WORKER_SOCKET);
  return path.join(path.resolve(cwd, env.KMS_DATA_DIR || VARIABLES.KMS_DATA_DIR.default), "run", "hsm-worker.sock");
}

/**
 * Spawns the hsm-worker with exactly `env` as its environment and resolves once its socket answers
 * GetStatus.
 */
export async function startWorker(env: NodeJS.ProcessEnv, options: StartOptions = {}): Promise<WorkerProcess> {
  const socketPath = workerSocketPath(env, options.cwd);
  const proc = launch("hsm-worker", options.entry ?? serviceEntry("@kms/hsm-worker"), env, options);
  let status: hsm.GetStatusResponse | undefined;
  await waitReady(proc, options, (readiness) => {
    void (async () => {
      while (!readiness.done) {
        if (existsSync(socketPath)) {
          const client = createPromiseClient(hsm.HsmWorkerService, `unix://${socketPath}`);
          try {
            status = await client.getStatus({}, { deadline: 1000 });
            readiness.ready();
            return;
          } catch {
            // Not listening yet (or a stale socket file): try again.
          } finally {
            client.close();
          }
        }
        await sleep(100);
      }
    })();
  });
  return Object.assign(proc, { status: status!, socketPath });
}

/**
 * Spawns kms-api with exactly `env` as its environment and resolves once it logs
 * {"msg":"kms-api listening","address":…} on stdout.
 */
export async function startApi(env: NodeJS.ProcessEnv, options: StartOptions = {}): Promise<ApiProcess> {
  let address: string | undefined;
  let awsEndpoint: string | undefined;
  let onAddress: (() => void) | undefined;
  const proc = launch("kms-api", options.entry ?? serviceEntry("@kms/kms-api"), env, options, (line, stream) => {
    if (stream !== "stdout" || address !== undefined || !line.startsWith("{")) return;
    try {
      const entry = JSON.parse(line) as { msg?: unknown; address?: unknown; awsEndpoint?: unknown };
      if (entry.msg === "kms-api listening" && typeof entry.address === "string") {
        address = entry.address;
        if (typeof entry.awsEndpoint === "string") awsEndpoint = entry.awsEndpoint;
        onAddress?.();
      }
    } catch {
      // Not a log line of ours.
    }
  });
  await waitReady(proc, options, (readiness) => {
    onAddress = () => readiness.ready();
    if (address !== undefined) readiness.ready();
  });
  return Object.assign(proc, { address: address!, awsEndpoint });
}

/** Children still running. A test runner or dev stack that exits must not leave a service behind. */
const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

type LineListener = (line: string, stream: "stdout" | "stderr") => void;

function launch(
  name: string,
  entry: string,
  env: NodeJS.ProcessEnv,
  options: StartOptions,
  onLine?: LineListener,
): ServiceProcess {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), entry], {
    env,
    cwd: options.cwd,
    stdio: ["ignore", "pipe", "pipe"],
    detached: options.ownProcessGroup ?? false,
  });
  const lines: string[] = [];
  const record = (line: string, stream: "stdout" | "stderr") => {
    lines.push(line);
    if (lines.length > OUTPUT_LINES) lines.shift();
    if (options.echo) (stream === "stdout" ? process.stdout : process.stderr).write(`[${name}] ${line}\n`);
    onLine?.(line, stream);
  };
  for (const stream of ["stdout", "stderr"] as const) {
    let partial = "";
    child[stream].setEncoding("utf8");
    child[stream].on("data", (chunk: string) => {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop() ?? "";
      for (const line of parts) record(line.replace(/\r$/, ""), stream);
    });
    child[stream].on("end", () => {
      if (partial !== "") record(partial, stream);
      partial = "";
    });
  }

  running.add(child);
  const exited = new Promise<number | null>((resolve) => {
    child.once("error", (err) => {
      // spawn itself failed: no "close" follows.
      if (child.pid === undefined) {
        lines.push(`spawn failed: ${err.message}`);
        running.delete(child);
        resolve(null);
      }
    });
    child.once("close", (code) => {
      running.delete(child);
      resolve(code);
    });
  });

  return {
    name,
    pid: child.pid ?? -1,
    child,
    exited,
    kill: (signal: NodeJS.Signals = "SIGTERM") => {
      if (running.has(child)) child.kill(signal);
    },
    stop: async (graceMs = options.graceMs ?? DEFAULT_GRACE_MS) => {
      if (running.has(child)) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
        try {
          return await exited;
        } finally {
          clearTimeout(timer);
        }
      }
      return exited;
    },
    output: () => lines.join("\n"),
  };
}

interface Readiness {
  readonly done: boolean;
  ready(): void;
}

/** Runs `probe` until it calls ready(); fails if the process exits first or the timeout passes. */
async function waitReady(proc: ServiceProcess, options: StartOptions, probe: (r: Readiness) => void): Promise<void> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let done = false;
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const readiness: Readiness = {
        get done() {
          return done;
        },
        ready: () => {
          done = true;
          resolve();
        },
      };
      timer = setTimeout(() => {
        done = true;
        reject(new Error(`${proc.name} did not get ready within ${timeoutMs} ms`));
      }, timeoutMs);
      void proc.exited.then((code) => {
        if (done) return;
        done = true;
        reject(new Error(`${proc.name} exited with ${code === null ? "a signal" : `code ${code}`} before it was ready`));
      });
      probe(readiness);
    });
  } catch (err) {
    await proc.stop(2000);
    const tail = proc.output().split("\n").slice(-40).join("\n");
    throw new Error(`${(err as Error).message}; its output:\n${tail}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
