// hsm-worker's configuration: the PKCS#11 module, token and PIN, its session pool, the RSA generation
// queue, and libuv's thread pool sized to them.
import { readFileSync } from "node:fs";
import { ConfigError, VARIABLES, raw } from "./variables";
import type { Env } from "./variables";
import { boolean, dataDir, integer, logLevel, workerSocket } from "./values";
import type { LogLevel } from "./values";

function callMode(env: Env): "inline" | "thread-pool" {
  const value = raw(env, "KMS_PKCS11_CALL_MODE") ?? "thread-pool";
  if (value !== "inline" && value !== "thread-pool") throw new ConfigError("KMS_PKCS11_CALL_MODE", `must be inline or thread-pool, got ${JSON.stringify(value)}`);
  return value;
}

function moduleProfile(env: Env): "auto" | "softhsm2" | "native" {
  const value = raw(env, "KMS_PKCS11_PROFILE") ?? "auto";
  if (value !== "auto" && value !== "softhsm2" && value !== "native") {
    throw new ConfigError("KMS_PKCS11_PROFILE", `must be auto, softhsm2 or native, got ${JSON.stringify(value)}`);
  }
  return value;
}

export interface Pkcs11Config {
  module: string;
  tokenLabel: string;
  /** Never logged. */
  pin: string;
  poolSize: number;
  rootKeyLabel: string;
  /** Create the root key when the token has none (first start); otherwise fail closed. */
  createRootKey: boolean;
  /** KMS_PKCS11_CALL_MODE: how short hot-path calls reach the module. */
  callMode: "inline" | "thread-pool";
  /** KMS_PKCS11_PROFILE: the module's capability profile, or auto (from C_GetInfo). */
  profile: "auto" | "softhsm2" | "native";
  /**
   * KMS_SOURCE_ROOT_KEY_FILE: a software root file whose SOFTWARE keys a root rotation moves onto the
   * token; unwrap only. Undefined: none.
   */
  sourceRootKeyFile: string | undefined;
}

/** The worker's queue for RSA key generation (seconds of CPU or HSM time each). */
export interface KeyGenerationConfig {
  /** Generations running at once; below the session pool's size when there is one. */
  concurrency: number;
  /** Generations waiting for their turn; one more is refused. */
  queue: number;
}

export interface WorkerConfig {
  dataDir: string;
  socketPath: string;
  /** Absent: the software root key under dataDir (only with allowSoftwareRoot); HSM keys are refused. */
  pkcs11: Pkcs11Config | undefined;
  /** KMS_ALLOW_SOFTWARE_ROOT: without it, no module means no start. */
  allowSoftwareRoot: boolean;
  keyCacheSize: number;
  logLevel: LogLevel;
  keyGeneration: KeyGenerationConfig;
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

function poolSize(env: Env): number {
  return integer(env, "KMS_PKCS11_POOL_SIZE", 8, 1, 1024);
}

function keyGeneration(env: Env): KeyGenerationConfig {
  const wanted = integer(env, "KMS_KEYGEN_CONCURRENCY", 1, 1, 64);
  // Generations hold a session each (HSM keys) for seconds: at least one session stays for everyone else.
  const concurrency = raw(env, "KMS_PKCS11_MODULE") === undefined ? wanted : Math.max(1, Math.min(wanted, poolSize(env) - 1));
  return { concurrency, queue: integer(env, "KMS_KEYGEN_QUEUE", 8, 0, 10_000) };
}

/** libuv's largest thread pool. */
const MAX_UV_THREADPOOL_SIZE = 1024;

/**
 * The UV_THREADPOOL_SIZE the worker needs: a thread for each session's PKCS#11 call (*Async calls run on
 * libuv's pool) plus one for each key generation (node:crypto generates there too), so that generations
 * never leave a session's call waiting for a thread. A larger value already in `env` is kept.
 */
export function workerThreadPoolSize(env: Env = process.env): number {
  const needed = Math.min(MAX_UV_THREADPOOL_SIZE, poolSize(env) + keyGeneration(env).concurrency);
  const given = Number(env.UV_THREADPOOL_SIZE);
  return Number.isInteger(given) && given > needed ? Math.min(given, MAX_UV_THREADPOOL_SIZE) : needed;
}

export function loadWorkerConfig(env: Env = process.env): WorkerConfig {
  const module = raw(env, "KMS_PKCS11_MODULE");
  // The source is moved onto a token: without a module there is nowhere to move it.
  if (module === undefined && raw(env, "KMS_SOURCE_ROOT_KEY_FILE") !== undefined) {
    throw new ConfigError("KMS_SOURCE_ROOT_KEY_FILE", "needs KMS_PKCS11_MODULE: a source root file is moved onto a PKCS#11 token by a root rotation");
  }
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
            poolSize: poolSize(env),
            rootKeyLabel: raw(env, "KMS_ROOT_KEY_LABEL") ?? VARIABLES.KMS_ROOT_KEY_LABEL.default,
            createRootKey: boolean(env, "KMS_CREATE_ROOT_KEY", false),
            callMode: callMode(env),
            profile: moduleProfile(env),
            sourceRootKeyFile: raw(env, "KMS_SOURCE_ROOT_KEY_FILE"),
          },
    allowSoftwareRoot: boolean(env, "KMS_ALLOW_SOFTWARE_ROOT", false),
    keyCacheSize: integer(env, "KMS_KEY_CACHE_SIZE", 10000, 1, 10_000_000),
    logLevel: logLevel(env),
    keyGeneration: keyGeneration(env),
  };
}
