// Configuration is read once at start-up: raw environment → defaults → validated object. A bad value
// stops the process with a message naming the variable.
import { X509Certificate, createPrivateKey } from "node:crypto";
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
  KMS_PKCS11_CALL_MODE: { default: "thread-pool", doc: "inline: short calls (AES-GCM, HMAC, ECDSA/EdDSA sign) run on the worker's thread, which costs the worker a third less CPU per call and a quarter of the latency with a module in the host (SoftHSM2, PCIe); thread-pool: through libuv's pool, right for network HSMs" },
  KMS_ROOT_KEY_LABEL: { default: "kms-root-wrapping-key", doc: "label of the HSM-resident root wrapping key" },
  KMS_KEY_CACHE_SIZE: { default: "10000", doc: "unwrapped key handles the worker keeps (LRU)" },
  KMS_ROTATE_AFTER_ENCRYPTIONS: { default: "1073741824", doc: "encryptions under one key version before the key rotates by use (2^30)" },
  KMS_JOB_INTERVAL_MS: { default: "60000", doc: "how often each replica runs the rotation and deletion jobs" },
  KMS_AUDIT_CHECKPOINT_INTERVAL: { default: "5m", doc: "how often each replica has its worker sign an audit checkpoint of the chain's head (also at shutdown), logged as an audit chain head line: a whole number and ms, s, m or h" },
  KMS_DB_NOTIFICATIONS: { default: "true", doc: "LISTEN for other replicas' key changes (the embedded dev Postgres allows one connection: false)" },
  KMS_HEALTH_LISTEN: { default: "", doc: "host:port of a plaintext listener serving only grpc.health.v1 (for Kubernetes gRPC probes, which cannot do TLS)" },
  KMS_TLS_CERT: { default: "", doc: "server certificate (PEM); with KMS_TLS_KEY turns on TLS" },
  KMS_TLS_KEY: { default: "", doc: "server private key (PEM) matching KMS_TLS_CERT" },
  KMS_TLS_CLIENT_CA: { default: "", doc: "CA bundle (PEM) for client certificates: turns on mutual TLS; principal = URI SAN (SPIFFE id) or subject CN" },
  KMS_JWT_JWKS_FILE: { default: "", doc: "JWKS file for bearer JWTs (principal = sub)" },
  KMS_JWT_JWKS_URL: { default: "", doc: "JWKS URL for bearer JWTs (fetched at start, refreshed on unknown kid)" },
  KMS_JWT_ISSUER: { default: "", doc: "required iss of bearer JWTs" },
  KMS_JWT_AUDIENCE: { default: "", doc: "required aud of bearer JWTs" },
  KMS_ADMINS: { default: "", doc: "comma-separated principals given every action by each new key's default policy" },
  KMS_CREATORS: { default: "*", doc: "comma-separated principals who may CreateKey, ListKeys and ListAliases (* = any authenticated caller)" },
  KMS_AUDITORS: { default: "", doc: "comma-separated principals who may ListAuditEvents, VerifyAuditLog and ListAuditCheckpoints (besides KMS_ADMINS)" },
  KMS_SHUTDOWN_GRACE_MS: { default: "10000", doc: "how long SIGTERM waits for in-flight calls" },
  KMS_RATE_LIMIT_PER_SECOND: { default: "2000", doc: "requests per second each principal may make (token bucket); over it: RESOURCE_EXHAUSTED, Throttling" },
  KMS_RATE_LIMIT_BURST: { default: "4000", doc: "requests a principal may make at once above its rate (the bucket's size)" },
  KMS_RATE_LIMIT_DELAY_MS: { default: "1000", doc: "how long a throttled call waits before its RESOURCE_EXHAUSTED (± 50 %, never past the caller's deadline), so that a client retrying in a tight loop cannot turn the limit into a flood of cheap rejections" },
  KMS_RATE_LIMIT_THROTTLED_IN_FLIGHT: { default: "4", doc: "calls a principal throttled in the last 2 s may have in progress at once; its others wait their turn, so that a flood's bursts do not hold up other principals' calls" },
  KMS_MAX_REQUEST_BYTES: { default: "4194304", doc: "largest request message kms-api accepts (grpc.max_receive_message_length)" },
  KMS_MAX_CONCURRENT_STREAMS: { default: "256", doc: "concurrent calls per client connection (grpc.max_concurrent_streams)" },
  KMS_FAULT_INJECT: { default: "", doc: "TEST ONLY: crash-after-generate makes kms-api SIGKILL itself between key generation and the database insert; audit-write-fail fails every audit write" },
  KMS_CREATE_ROOT_KEY: { default: "false", doc: "true: a worker that finds no root key on its token creates one (first start only); false: it fails closed" },
  KMS_LOG_LEVEL: { default: "info", doc: "error, warn, info or debug" },
  OTEL_EXPORTER_OTLP_ENDPOINT: { default: "", doc: "OTLP/HTTP collector URL (e.g. http://otel-collector:4318): set, traces and metrics are exported (read by the OpenTelemetry SDK, with the other standard OTEL_EXPORTER_OTLP_* variables)" },
  OTEL_SERVICE_NAME: { default: "(kms-api, hsm-worker)", doc: "service.name of exported traces and metrics" },
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

const DURATION_UNITS_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/** "500ms", "30s", "5m", "1h" → milliseconds, within min..max. */
function duration(env: Env, name: VariableName, minMs: number, maxMs: number): number {
  const value = raw(env, name) ?? VARIABLES[name].default;
  const m = /^(\d+)(ms|s|m|h)$/.exec(value);
  if (!m) throw new ConfigError(name, `must be a whole number and ms, s, m or h (e.g. 5m), got ${JSON.stringify(value)}`);
  const ms = Number(m[1]) * DURATION_UNITS_MS[m[2] as keyof typeof DURATION_UNITS_MS];
  if (ms < minMs || ms > maxMs) throw new ConfigError(name, `must be between ${minMs} ms and ${maxMs / 3_600_000} h, got ${value}`);
  return ms;
}

function callMode(env: Env): "inline" | "thread-pool" {
  const value = raw(env, "KMS_PKCS11_CALL_MODE") ?? "thread-pool";
  if (value !== "inline" && value !== "thread-pool") throw new ConfigError("KMS_PKCS11_CALL_MODE", `must be inline or thread-pool, got ${JSON.stringify(value)}`);
  return value;
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
  /** Create the root key when the token has none (first start); otherwise fail closed. */
  createRootKey: boolean;
  /** KMS_PKCS11_CALL_MODE: how short hot-path calls reach the module. */
  callMode: "inline" | "thread-pool";
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
            createRootKey: boolean(env, "KMS_CREATE_ROOT_KEY", false),
            callMode: callMode(env),
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

export interface TlsConfig {
  cert: Buffer;
  key: Buffer;
  /** Present: clients must show a certificate signed by it (mutual TLS). */
  clientCa: Buffer | undefined;
}

export interface JwtConfig {
  jwks: { file: string; keys: { keys: object[] } } | { url: string };
  issuer: string;
  audience: string;
}

export interface AccessConfig {
  admins: string[];
  creators: string[];
  auditors: string[];
}

export interface ApiConfig {
  listen: ListenAddress;
  /** Plaintext, health service only; absent: health is served on the main port only. */
  healthListen: ListenAddress | undefined;
  /** Absent: plaintext (allowed on loopback only). */
  tls: TlsConfig | undefined;
  jwt: JwtConfig | undefined;
  access: AccessConfig;
  /** Required by kms-api itself; the dev stack sets it to its embedded Postgres. */
  databaseUrl: string;
  workerSocket: string;
  workerDeadlineMs: number;
  rotateAfterEncryptions: number;
  jobIntervalMs: number;
  /** KMS_AUDIT_CHECKPOINT_INTERVAL: signed audit checkpoints at least this often. */
  auditCheckpointIntervalMs: number;
  dbNotifications: boolean;
  shutdownGraceMs: number;
  logLevel: LogLevel;
  limits: LimitsConfig;
}

/** Overload protection (services/kms-api/src/limits.ts). */
export interface LimitsConfig {
  /** Token bucket per principal: refill rate and size. */
  ratePerSecond: number;
  burst: number;
  /** How long a throttled call is held before its RESOURCE_EXHAUSTED. */
  rejectDelayMs: number;
  /** Calls in progress at once for a principal being throttled. */
  throttledMaxInFlight: number;
  maxRequestBytes: number;
  maxConcurrentStreams: number;
}

function readPem(env: Env, name: VariableName): Buffer | undefined {
  const file = raw(env, name);
  if (file === undefined) return undefined;
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(name, `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

function tlsConfig(env: Env): TlsConfig | undefined {
  const cert = readPem(env, "KMS_TLS_CERT");
  const key = readPem(env, "KMS_TLS_KEY");
  const clientCa = readPem(env, "KMS_TLS_CLIENT_CA");
  if (!cert && !key) {
    if (clientCa) throw new ConfigError("KMS_TLS_CLIENT_CA", "needs KMS_TLS_CERT and KMS_TLS_KEY");
    return undefined;
  }
  if (!cert) throw new ConfigError("KMS_TLS_CERT", "is required with KMS_TLS_KEY");
  if (!key) throw new ConfigError("KMS_TLS_KEY", "is required with KMS_TLS_CERT");
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch {
    throw new ConfigError("KMS_TLS_CERT", "is not a PEM certificate");
  }
  let matches: boolean;
  try {
    matches = certificate.checkPrivateKey(createPrivateKey(key));
  } catch {
    throw new ConfigError("KMS_TLS_KEY", "is not a PEM private key");
  }
  if (!matches) throw new ConfigError("KMS_TLS_KEY", "does not match the certificate in KMS_TLS_CERT");
  if (clientCa) {
    try {
      new X509Certificate(clientCa);
    } catch {
      throw new ConfigError("KMS_TLS_CLIENT_CA", "is not a PEM certificate bundle");
    }
  }
  return { cert, key, clientCa };
}

function jwtConfig(env: Env): JwtConfig | undefined {
  const file = raw(env, "KMS_JWT_JWKS_FILE");
  const url = raw(env, "KMS_JWT_JWKS_URL");
  if (file === undefined && url === undefined) return undefined;
  if (file !== undefined && url !== undefined) throw new ConfigError("KMS_JWT_JWKS_URL", "set either KMS_JWT_JWKS_FILE or KMS_JWT_JWKS_URL, not both");
  const issuer = raw(env, "KMS_JWT_ISSUER");
  if (issuer === undefined) throw new ConfigError("KMS_JWT_ISSUER", "is required with a JWKS");
  const audience = raw(env, "KMS_JWT_AUDIENCE");
  if (audience === undefined) throw new ConfigError("KMS_JWT_AUDIENCE", "is required with a JWKS");
  if (url !== undefined) {
    if (!/^https?:\/\//.test(url)) throw new ConfigError("KMS_JWT_JWKS_URL", "must be an http(s) URL");
    return { jwks: { url }, issuer, audience };
  }
  let keys: unknown;
  try {
    keys = JSON.parse(readFileSync(file!, "utf8"));
  } catch (err) {
    throw new ConfigError("KMS_JWT_JWKS_FILE", `cannot read a JSON JWKS from ${file} (${(err as NodeJS.ErrnoException).code ?? "invalid JSON"})`);
  }
  const list = (keys as { keys?: unknown }).keys;
  if (!Array.isArray(list) || list.length === 0) throw new ConfigError("KMS_JWT_JWKS_FILE", "must hold {\"keys\": [...]} with at least one key");
  return { jwks: { file: file!, keys: { keys: list as object[] } }, issuer, audience };
}

function principals(env: Env, name: VariableName): string[] {
  return (raw(env, name) ?? VARIABLES[name].default).split(",").map((p) => p.trim()).filter((p) => p !== "");
}

export function loadApiConfig(env: Env = process.env): ApiConfig {
  const listen = parseListen(raw(env, "KMS_LISTEN") ?? VARIABLES.KMS_LISTEN.default);
  const tls = tlsConfig(env);
  const jwt = jwtConfig(env);
  if (!tls && !isLoopback(listen.host)) {
    // Plaintext is dev mode: never silently on an address other machines can reach.
    throw new ConfigError("KMS_LISTEN", `plaintext gRPC listens on loopback only, got ${listen.host}; set KMS_TLS_CERT and KMS_TLS_KEY`);
  }
  const databaseUrl = raw(env, "DATABASE_URL");
  if (databaseUrl === undefined) throw new ConfigError("DATABASE_URL", "is required (npm start provides an embedded one)");
  if (!/^postgres(ql)?:\/\//.test(databaseUrl)) throw new ConfigError("DATABASE_URL", "must start with postgres://");
  const health = raw(env, "KMS_HEALTH_LISTEN");
  return {
    listen,
    healthListen: health === undefined ? undefined : parseListen(health, "KMS_HEALTH_LISTEN"),
    tls,
    jwt,
    access: { admins: principals(env, "KMS_ADMINS"), creators: principals(env, "KMS_CREATORS"), auditors: principals(env, "KMS_AUDITORS") },
    databaseUrl,
    workerSocket: workerSocket(env),
    workerDeadlineMs: integer(env, "KMS_WORKER_DEADLINE_MS", 5000, 10, 600_000),
    rotateAfterEncryptions: integer(env, "KMS_ROTATE_AFTER_ENCRYPTIONS", 2 ** 30, 1, 2 ** 32),
    jobIntervalMs: integer(env, "KMS_JOB_INTERVAL_MS", 60_000, 10, 86_400_000),
    auditCheckpointIntervalMs: duration(env, "KMS_AUDIT_CHECKPOINT_INTERVAL", 100, 86_400_000),
    dbNotifications: boolean(env, "KMS_DB_NOTIFICATIONS", true),
    shutdownGraceMs: integer(env, "KMS_SHUTDOWN_GRACE_MS", 10000, 0, 600_000),
    logLevel: logLevel(env),
    limits: {
      ratePerSecond: integer(env, "KMS_RATE_LIMIT_PER_SECOND", 2000, 1, 10_000_000),
      burst: integer(env, "KMS_RATE_LIMIT_BURST", 4000, 1, 10_000_000),
      rejectDelayMs: integer(env, "KMS_RATE_LIMIT_DELAY_MS", 1000, 0, 10_000),
      throttledMaxInFlight: integer(env, "KMS_RATE_LIMIT_THROTTLED_IN_FLIGHT", 4, 1, 100_000),
      maxRequestBytes: integer(env, "KMS_MAX_REQUEST_BYTES", 4 * 1024 * 1024, 1024, 64 * 1024 * 1024),
      maxConcurrentStreams: integer(env, "KMS_MAX_CONCURRENT_STREAMS", 256, 1, 100_000),
    },
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
