// `npm start`: the whole KMS on one machine, with no setup. Postgres is DATABASE_URL or an embedded
// PGlite; the HSM is KMS_PKCS11_MODULE, else a SoftHSM2 token of its own, else the worker's software
// root key. Starts hsm-worker, then kms-api; restarts the worker if it dies; stops everything in order
// on SIGINT/SIGTERM (kms-api first, so it can drain in-flight calls, then the worker, then Postgres).
import { mkdirSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { ConfigError, VARIABLES, loadDevStackConfig } from "@kms/config";
import { ensureSoftHsmToken, softHsmInstalled } from "@kms/softhsm";
import { ensureDevAccessKey } from "./aws-access-keys";
import { startEmbeddedPostgres } from "./embedded-postgres";
import type { EmbeddedPostgres } from "./embedded-postgres";
import { startApi, startWorker, workerSocketPath } from "./processes";
import type { ApiProcess, StartOptions, WorkerProcess } from "./processes";

/** Where `npm start` serves the AWS-compatible API unless KMS_AWS_LISTEN says otherwise ("" turns it off). */
const DEV_AWS_LISTEN = "127.0.0.1:7301";
const say = (line: string) => process.stdout.write(`[dev-stack] ${line}\n`);
const childOptions: StartOptions = { echo: true, ownProcessGroup: true };

/** The URL with its password removed, for printing. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "";
    return u.toString();
  } catch {
    return "(unparseable DATABASE_URL)";
  }
}

/** Fails if another process serves the socket (another dev stack on the same data dir). */
async function ensureSocketFree(socketPath: string): Promise<void> {
  const inUse = await new Promise<boolean>((resolve) => {
    const socket = net.connect(socketPath);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
  if (inUse) {
    throw new Error(`${socketPath} is in use: is another dev stack running on this KMS_DATA_DIR?`);
  }
}

interface Hsm {
  env: NodeJS.ProcessEnv;
  description: string;
}

function chooseHsm(dataDir: string, pkcs11Module: string | undefined, env: NodeJS.ProcessEnv): Hsm {
  if (pkcs11Module !== undefined) {
    const label = env.KMS_PKCS11_TOKEN_LABEL || VARIABLES.KMS_PKCS11_TOKEN_LABEL.default;
    return { env: {}, description: `PKCS#11 module ${pkcs11Module}, token "${label}"` };
  }
  if (softHsmInstalled()) {
    const dir = path.join(dataDir, "softhsm");
    const token = ensureSoftHsmToken(dir, "kms");
    return {
      env: {
        SOFTHSM2_CONF: token.confPath,
        KMS_PKCS11_MODULE: token.module,
        KMS_PKCS11_TOKEN_LABEL: token.label,
        KMS_PKCS11_PIN_FILE: token.pinFile,
        // SoftHSM2 runs in the worker's process: a call costs less than a thread-pool hand-over.
        KMS_PKCS11_CALL_MODE: env.KMS_PKCS11_CALL_MODE || "inline",
        // Its own token, made just now: the first worker creates the root key. Later starts find it, and
        // fail closed if it is gone (KMS_CREATE_ROOT_KEY in the README).
        ...(token.created ? { KMS_CREATE_ROOT_KEY: "true" } : {}),
      },
      description: `SoftHSM2 token "${token.label}" at ${dir}${token.created ? " (created now)" : ""}`,
    };
  }
  return {
    // No HSM at all: the dev stack opts in to the software root key explicitly (the worker refuses otherwise).
    env: { KMS_ALLOW_SOFTWARE_ROOT: "true" },
    description: `software root key ${path.join(dataDir, "root-key")} (no PKCS#11 module and no SoftHSM2: only SOFTWARE keys)`,
  };
}

async function main(): Promise<number> {
  const config = loadDevStackConfig();
  const dataDir = config.dataDir;
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const socketPath = workerSocketPath({ ...process.env, KMS_DATA_DIR: dataDir });
  mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 });
  await ensureSocketFree(socketPath);

  const hsmChoice = chooseHsm(dataDir, config.pkcs11Module, process.env);
  const workerEnv: NodeJS.ProcessEnv = {
    ...process.env,
    ...hsmChoice.env,
    KMS_DATA_DIR: dataDir,
    KMS_WORKER_SOCKET: socketPath,
  };

  say(`data dir:  ${dataDir}`);
  say(`HSM:       ${hsmChoice.description}`);
  if (config.databaseUrl === undefined) say(`database:  starting embedded Postgres (PGlite) at ${path.join(dataDir, "pg")}…`);

  // Postgres and the worker start side by side: PGlite takes a few seconds to open.
  let pg: EmbeddedPostgres | undefined;
  let worker: WorkerProcess | undefined;
  let api: ApiProcess | undefined;
  let shuttingDown = false;
  let starting: Promise<unknown> = Promise.resolve();

  const shutdown = async (reason: string, code: number): Promise<never> => {
    shuttingDown = true;
    await starting.catch(() => {}); // let a start in progress finish, then stop what it started
    const order = [api && "kms-api", worker && "hsm-worker", pg && "Postgres"].filter(Boolean);
    say(`${reason}${order.length ? `: stopping ${order.join(", then ")}` : ""}`);
    await api?.stop();
    await worker?.stop();
    await pg?.close();
    say("stopped");
    process.exit(code);
  };

  let signals = 0;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      signals += 1;
      if (signals > 1) {
        // A second Ctrl-C: do not wait any longer.
        api?.kill("SIGKILL");
        worker?.kill("SIGKILL");
        process.exit(130);
      }
      void shutdown(signal, 0);
    });
  }

  const pgStart =
    config.databaseUrl === undefined
      ? startEmbeddedPostgres({ dataDir: path.join(dataDir, "pg") }).then((p) => (pg = p))
      : Promise.resolve(undefined);
  const workerStart = startWorker(workerEnv, childOptions).then((w) => (worker = w));
  starting = Promise.all([pgStart, workerStart]);
  const started = await Promise.allSettled([pgStart, workerStart]);
  if (shuttingDown) return new Promise<number>(() => {}); // a signal came during start; shutdown() exits
  const failed = started.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) {
    await worker?.stop();
    await pg?.close();
    throw failed.reason;
  }
  const databaseUrl = config.databaseUrl ?? pg!.url;
  say(
    config.databaseUrl === undefined
      ? `database:  embedded Postgres (PGlite) at ${pg!.dataDir}, serving ${redactUrl(databaseUrl)}`
      : `database:  ${redactUrl(databaseUrl)}`,
  );
  say(`worker:    pid ${worker!.pid} on unix://${socketPath} (${worker!.status.description})`);

  // The worker is a sidecar: if it dies, restart it (kms-api answers UNAVAILABLE meanwhile).
  const superviseWorker = (w: WorkerProcess) => {
    const startedAt = Date.now();
    void w.exited.then(async (code) => {
      let backoffMs = Date.now() - startedAt > 60_000 ? 500 : 1000;
      const how = code === null ? `killed by ${w.child.signalCode ?? "a signal"}` : `exit code ${code}`;
      while (!shuttingDown) {
        say(`hsm-worker exited unexpectedly (${how}); restarting in ${backoffMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, backoffMs));
        if (shuttingDown) return;
        try {
          worker = await startWorker(workerEnv, childOptions);
          if (shuttingDown) {
            await worker.stop();
            return;
          }
          say(`hsm-worker restarted (pid ${worker.pid})`);
          superviseWorker(worker);
          return;
        } catch (err) {
          say(`hsm-worker restart failed: ${(err as Error).message.split("\n")[0]}`);
          backoffMs = Math.min(backoffMs * 2, 30_000);
        }
      }
    });
  };
  superviseWorker(worker!);

  // The AWS-compatible API, on unless KMS_AWS_LISTEN is set to "": one dev key pair for principal "dev".
  const awsListen = process.env.KMS_AWS_LISTEN ?? DEV_AWS_LISTEN;
  const awsKeysFile = process.env.KMS_AWS_ACCESS_KEYS_FILE || path.join(dataDir, "aws-access-keys");
  const awsKey = awsListen !== "" && !process.env.KMS_AWS_ACCESS_KEYS_FILE ? ensureDevAccessKey(awsKeysFile) : undefined;
  const apiEnv: NodeJS.ProcessEnv = {
    ...process.env,
    ...(awsListen !== "" ? { KMS_AWS_LISTEN: awsListen, KMS_AWS_ACCESS_KEYS_FILE: awsKeysFile } : {}),
    KMS_DATA_DIR: dataDir,
    KMS_WORKER_SOCKET: socketPath,
    KMS_LISTEN: process.env.KMS_LISTEN || VARIABLES.KMS_LISTEN.default,
    DATABASE_URL: databaseUrl,
    // npm start is the local dev stack: plaintext loopback with "dev" as the one caller (unless TLS is set).
    KMS_INSECURE_DEV_MODE: process.env.KMS_INSECURE_DEV_MODE || "true",
    // The embedded Postgres serves one connection: no second one for LISTEN (one replica needs none).
    ...(config.databaseUrl === undefined ? { KMS_DB_NOTIFICATIONS: "false" } : {}),
  };
  try {
    const apiStart = startApi(apiEnv, childOptions);
    starting = apiStart;
    api = await apiStart;
  } catch (err) {
    if (shuttingDown) return new Promise<number>(() => {});
    say(`kms-api did not start: ${(err as Error).message}`);
    return shutdown("kms-api failed", 1);
  }
  void api.exited.then((code) => {
    const how = code === null ? `killed by ${api?.child.signalCode ?? "a signal"}` : `exit code ${code}`;
    if (!shuttingDown) void shutdown(`kms-api exited unexpectedly (${how})`, code ?? 1);
  });

  say(`kms-api:   pid ${api.pid}, listening on ${api.address} (plaintext gRPC, loopback dev mode)`);
  if (api.awsEndpoint !== undefined) {
    const region = process.env.KMS_AWS_REGION || VARIABLES.KMS_AWS_REGION.default;
    say(`AWS API:   ${api.awsEndpoint} (AWS KMS JSON API, SigV4, region ${region}); access keys in ${awsKeysFile}`);
    if (awsKey) {
      say(
        `           e.g. AWS_ACCESS_KEY_ID=${awsKey.accessKeyId} AWS_SECRET_ACCESS_KEY=$(awk '!/^#/{print $2; exit}' ${awsKeysFile}) ` +
          `aws --endpoint-url ${api.awsEndpoint} --region ${region} kms list-keys`,
      );
    }
  }
  say(`ready. Try: /usr/bin/python3 examples/python/smoke.py ${api.address} <stubs dir> (see examples/python/README.md)`);
  say("Ctrl-C stops everything; state stays in the data dir.");
  return new Promise<number>(() => {}); // runs until a signal or kms-api's exit
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      if (err instanceof ConfigError) {
        process.stderr.write(`[dev-stack] configuration error: ${err.message}\n`);
      } else {
        process.stderr.write(`[dev-stack] failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
      }
      process.exit(1);
    },
  );
}
