// Configuration is read once at start-up: raw environment → defaults → validated object. A bad value
// stops the process with a message naming the variable.
import { readFileSync } from "node:fs";
import path from "node:path";

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`);
  }
}

type Env = Record<string, string | undefined>;

/** Every variable the services read, with its default and meaning. The README's table mirrors this list. */
export const VARIABLES = {
  KMS_LISTEN: { default: "127.0.0.1:7300", doc: "host:port the kms-api gRPC server listens on" },
  KMS_DATA_DIR: { default: "./.kms-data", doc: "local state: embedded Postgres, dev SoftHSM token, software root key, worker socket" },
  DATABASE_URL: { default: "(embedded)", doc: "Postgres URL; unset: an embedded PGlite under KMS_DATA_DIR (dev only)" },
  KMS_WORKER_SOCKET: { default: "$KMS_DATA_DIR/run/hsm-worker.sock", doc: "Unix socket between kms-api and its hsm-worker" },
  KMS_WORKER_DEADLINE_MS: { default: "5000", doc: "deadline of every kms-api → hsm-worker call" },
  KMS_PKCS11_MODULE: { default: "(SoftHSM2 if installed)", doc: "path of the PKCS#11 module; unset and no SoftHSM2: software root key" },
  KMS_PKCS11_TOKEN_LABEL: { default: "kms", doc: "label of the token that holds the root key" },
  KMS_PKCS11_PIN: { default: "", doc: "user PIN of the token" },
  KMS_PKCS11_PIN_FILE: { default: "", doc: "file holding the user PIN (preferred over KMS_PKCS11_PIN)" },
  KMS_PKCS11_POOL_SIZE: { default: "8", doc: "PKCS#11 sessions in the worker's pool" },
  KMS_ROOT_KEY_LABEL: { default: "kms-root-wrapping-key", doc: "label of the HSM-resident root wrapping key" },
  KMS_KEY_CACHE_SIZE: { default: "10000", doc: "unwrapped key handles the worker keeps (LRU)" },
  KMS_ROTATE_AFTER_ENCRYPTIONS: { default: "1073741824", doc: "encryptions under one key version before the key rotates by use (2^30)" },
  KMS_JOB_INTERVAL_MS: { default: "60000", doc: "how often each replica runs the rotation and deletion jobs" },
  KMS_DB_NOTIFICATIONS: { default: "true", doc: "LISTEN for other replicas' key changes (the embedded dev Postgres allows one connection: false)" },
  KMS_SHUTDOWN_GRACE_MS: { default: "10000", doc: "how long SIGTERM waits for in-flight calls" },
  KMS_LOG_LEVEL: { default: "info", doc: "error, warn, info or debug" },
} as const;
export type VariableName = keyof typeof VARIABLES;

function raw(env: Env, name: VariableName): string | undefined {
  const value = env[name];
  return value === undefined || value === "" ? undefined : value;
}

function integer(env: Env, name: VariableName, fallback: number, min: number, max: number): number {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new ConfigError(name, `must be a whole number, got ${JSON.stringify(value)}`);
  const n = Number(value);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function boolean(env: Env, name: VariableName, fallback: boolean): boolean {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  if (value === "true") return true;
  if (value === "false") return false;
  throw new ConfigError(name, `must be true or false, got ${JSON.stringify(value)}`);
}

function dataDir(env: Env): string {
  return path.resolve(raw(env, "KMS_DATA_DIR") ?? VARIABLES.KMS_DATA_DIR.default);
}

function workerSocket(env: Env): string {
  return path.resolve(raw(env, "KMS_WORKER_SOCKET") ?? path.join(dataDir(env), "run", "hsm-worker.sock"));
}

export type LogLevel = "error" | "warn" | "info" | "debug";
function logLevel(env: Env): LogLevel {
  const value = raw(env, "KMS_LOG_LEVEL") ?? "info";
  if (value === "error" || value === "warn" || value === "info" || value === "debug") return value;
  throw new ConfigError("KMS_LOG_LEVEL", `must be error, warn, info or debug, got ${JSON.stringify(value)}`);
}

export interface Pkcs11Config {
  module: string;
  tokenLabel: string;
  /** Never logged. */
  pin: string;
  poolSize: number;
  rootKeyLabel: string;
}

export interface WorkerConfig {
  dataDir: string;
  socketPath: string;
  /** Absent: the software root key under dataDir; HSM keys are refused. */
  pkcs11: Pkcs11Config | undefined;
  keyCacheSize: number;
  logLevel: LogLevel;
}

function pin(env: Env): string {
  const file = raw(env, "KMS_PKCS11_PIN_FILE");
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      throw new ConfigError("KMS_PKCS11_PIN_FILE", `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
    }
    const value = text.replace(/\r?\n$/, "");
    if (value === "") throw new ConfigError("KMS_PKCS11_PIN_FILE", `${file} is empty`);
    return value;
  }
  const value = raw(env, "KMS_PKCS11_PIN");
  if (value === undefined) throw new ConfigError("KMS_PKCS11_PIN", "set it or KMS_PKCS11_PIN_FILE when KMS_PKCS11_MODULE is set");
  return value;
}

export function loadWorkerConfig(env: Env = process.env): WorkerConfig {
  const module = raw(env, "KMS_PKCS11_MODULE");
  return {
    dataDir: dataDir(env),
    socketPath: workerSocket(env),
    pkcs11:
      module === undefined
        ? undefined
        : {
            module,
            tokenLabel: raw(env, "KMS_PKCS11_TOKEN_LABEL") ?? VARIABLES.KMS_PKCS11_TOKEN_LABEL.default,
            pin: pin(env),
            poolSize: integer(env, "KMS_PKCS11_POOL_SIZE", 8, 1, 1024),
            rootKeyLabel: raw(env, "KMS_ROOT_KEY_LABEL") ?? VARIABLES.KMS_ROOT_KEY_LABEL.default,
          },
    keyCacheSize: integer(env, "KMS_KEY_CACHE_SIZE", 10000, 1, 10_000_000),
    logLevel: logLevel(env),
  };
}

export interface ListenAddress {
  host: string;
  port: number;
}

export function parseListen(value: string, variable: VariableName = "KMS_LISTEN"): ListenAddress {
  const match = /^(?:\[([0-9a-fA-F:]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new ConfigError(variable, `must be host:port, got ${JSON.stringify(value)}`);
  return { host: match[1] ?? match[2] ?? "", port };
}

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export interface ApiConfig {
  listen: ListenAddress;
  /** Required by kms-api itself; the dev stack sets it to its embedded Postgres. */
  databaseUrl: string;
  workerSocket: string;
  workerDeadlineMs: number;
  rotateAfterEncryptions: number;
  jobIntervalMs: number;
  dbNotifications: boolean;
  shutdownGraceMs: number;
  logLevel: LogLevel;
}

export function loadApiConfig(env: Env = process.env): ApiConfig {
  const listen = parseListen(raw(env, "KMS_LISTEN") ?? VARIABLES.KMS_LISTEN.default);
  if (!isLoopback(listen.host)) {
    // Authentication has its own issue; until then the server only runs in loopback dev mode.
    throw new ConfigError("KMS_LISTEN", `plaintext dev mode listens on loopback only, got ${listen.host}`);
  }
  const databaseUrl = raw(env, "DATABASE_URL");
  if (databaseUrl === undefined) throw new ConfigError("DATABASE_URL", "is required (npm start provides an embedded one)");
  if (!/^postgres(ql)?:\/\//.test(databaseUrl)) throw new ConfigError("DATABASE_URL", "must start with postgres://");
  return {
    listen,
    databaseUrl,
    workerSocket: workerSocket(env),
    workerDeadlineMs: integer(env, "KMS_WORKER_DEADLINE_MS", 5000, 10, 600_000),
    rotateAfterEncryptions: integer(env, "KMS_ROTATE_AFTER_ENCRYPTIONS", 2 ** 30, 1, 2 ** 32),
    jobIntervalMs: integer(env, "KMS_JOB_INTERVAL_MS", 60_000, 10, 86_400_000),
    dbNotifications: boolean(env, "KMS_DB_NOTIFICATIONS", true),
    shutdownGraceMs: integer(env, "KMS_SHUTDOWN_GRACE_MS", 10000, 0, 600_000),
    logLevel: logLevel(env),
  };
}

export interface DevStackConfig {
  dataDir: string;
  databaseUrl: string | undefined;
  pkcs11Module: string | undefined;
}

/** Where Debian's softhsm2 package puts its module. */
export const SOFTHSM2_MODULE = "/usr/lib/softhsm/libsofthsm2.so";

export function loadDevStackConfig(env: Env = process.env): DevStackConfig {
  return {
    dataDir: dataDir(env),
    databaseUrl: raw(env, "DATABASE_URL"),
    pkcs11Module: raw(env, "KMS_PKCS11_MODULE"),
  };
}
