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

export type Env = Record<string, string | undefined>;

/** Every variable the services read, with its default and meaning. The README's table mirrors this list. */
export const VARIABLES = {
  KMS_LISTEN: { default: "127.0.0.1:7300", doc: "host:port the kms-api gRPC server listens on" },
  KMS_DATA_DIR: { default: "./.kms-data", doc: "local state: embedded Postgres, dev SoftHSM token, software root key, worker socket" },
  DATABASE_URL: { default: "(embedded)", doc: "Postgres URL; unset: an embedded PGlite under KMS_DATA_DIR (dev only)" },
  KMS_WORKER_SOCKET: { default: "$KMS_DATA_DIR/run/hsm-worker.sock", doc: "Unix socket between kms-api and its hsm-worker" },
  KMS_WORKER_DEADLINE_MS: { default: "5000", doc: "deadline of every kms-api → hsm-worker call" },
  KMS_PKCS11_MODULE: { default: "(SoftHSM2 if installed)", doc: "path of the PKCS#11 module; unset: the worker refuses to start unless KMS_ALLOW_SOFTWARE_ROOT=true (npm start: its own SoftHSM2 token if installed, else the software root key)" },
  KMS_ALLOW_SOFTWARE_ROOT: { default: "false", doc: "true: a worker without KMS_PKCS11_MODULE keeps its root key in a file under KMS_DATA_DIR (dev and tests only; HSM keys are refused); false: it refuses to start" },
  KMS_PKCS11_TOKEN_LABEL: { default: "kms", doc: "label of the token that holds the root key" },
  KMS_PKCS11_PIN: { default: "", doc: "user PIN of the token" },
  KMS_PKCS11_PIN_FILE: { default: "", doc: "file holding the user PIN (preferred over KMS_PKCS11_PIN)" },
  KMS_PKCS11_POOL_SIZE: { default: "8", doc: "PKCS#11 sessions in the worker's pool" },
  KMS_PKCS11_CALL_MODE: { default: "thread-pool", doc: "inline: short calls (AES-GCM, HMAC, ECDSA/EdDSA sign) run on the worker's thread, which costs the worker a third less CPU per call and a quarter of the latency with a module in the host (SoftHSM2, PCIe); thread-pool: through libuv's pool, right for network HSMs" },
  KMS_PKCS11_PROFILE: { default: "auto", doc: "the module's capability profile: softhsm2 (its workarounds: RSA-OAEP-SHA-256 as raw RSA plus OAEP decoding in the worker), native (every mechanism in the module, e.g. Luna, CloudHSM), or auto: softhsm2 when C_GetInfo names SoftHSM, else native" },
  KMS_KEYGEN_CONCURRENCY: { default: "1", doc: "RSA key generations the worker runs at once (at most KMS_PKCS11_POOL_SIZE - 1, so generations never hold every session); the others wait in its queue" },
  KMS_KEYGEN_QUEUE: { default: "8", doc: "RSA key generations that may wait for their turn; beyond it GenerateKeyMaterial answers RESOURCE_EXHAUSTED, Throttling" },
  UV_THREADPOOL_SIZE: { default: "(KMS_PKCS11_POOL_SIZE + KMS_KEYGEN_CONCURRENCY)", doc: "libuv's thread pool in the hsm-worker; the worker sets it at start to one thread per session plus one per generation, unless it is set higher" },
  KMS_ROOT_KEY_LABEL: { default: "kms-root-wrapping-key", doc: "label of the HSM-resident root wrapping key" },
  KMS_KEY_CACHE_SIZE: { default: "10000", doc: "unwrapped key handles the worker keeps (LRU)" },
  KMS_ROTATE_AFTER_ENCRYPTIONS: { default: "1073741824", doc: "encryptions under one key version before the key rotates by use (2^30)" },
  KMS_IMPORTED_KEY_MAX_ENCRYPTIONS: { default: "2147483648", doc: "encryptions under one version of an imported key (which cannot rotate by use) before Encrypt, GenerateDataKey and ReEncrypt to it are refused (2^31; at most 2^32, the AES-GCM random-IV limit)" },
  KMS_JOB_INTERVAL_MS: { default: "60000", doc: "how often each replica runs the rotation and deletion jobs" },
  KMS_REQUIRE_DATABASE_TLS: { default: "false", doc: "true (production): kms-api and its migrate command refuse a DATABASE_URL without sslmode=verify-full (TLS with the server's certificate and host name verified)" },
  KMS_METADATA_CACHE_TTL_MS: { default: "1000", doc: "how long kms-api serves key and alias metadata from memory: the longest another replica's change can go unseen when its NOTIFY is lost or KMS_DB_NOTIFICATIONS=false; 0: every call reads Postgres" },
  KMS_AUDIT_CHECKPOINT_INTERVAL: { default: "5m", doc: "how often each replica has its worker sign an audit checkpoint of the chain's head (also at shutdown), logged as an audit chain head line: a whole number and ms, s, m or h" },
  KMS_DB_NOTIFICATIONS: { default: "true", doc: "LISTEN for other replicas' key changes (the embedded dev Postgres allows one connection: false)" },
  KMS_AWS_LISTEN: { default: "", doc: "host:port of the AWS KMS-compatible JSON API (SigV4; docs/aws-compatibility.md); HTTPS with KMS_TLS_CERT and KMS_TLS_KEY, plaintext only on loopback with KMS_INSECURE_DEV_MODE=true; unset: off" },
  KMS_AWS_REGION: { default: "us-east-1", doc: "the region the AWS API answers as: in its ARNs, and the region every SigV4 credential scope must name" },
  KMS_AWS_ACCOUNT_ID: { default: "000000000000", doc: "the 12-digit account id in the AWS API's ARNs" },
  KMS_AWS_ACCESS_KEYS_FILE: { default: "", doc: "the AWS API's access keys, one `<access key id> <secret access key> <principal>` a line (mode 0600 or stricter; reloaded on change and SIGHUP); required with KMS_AWS_LISTEN" },
  KMS_HEALTH_LISTEN: { default: "", doc: "host:port of a plaintext listener serving only grpc.health.v1 (for Kubernetes gRPC probes, which cannot do TLS)" },
  KMS_TLS_CERT: { default: "", doc: "kms-api: server certificate (PEM); with KMS_TLS_KEY turns on TLS. kube-kms-plugin: its client certificate for mutual TLS" },
  KMS_TLS_KEY: { default: "", doc: "private key (PEM) matching KMS_TLS_CERT" },
  KMS_TLS_CLIENT_CA: { default: "", doc: "CA bundle (PEM) for client certificates: turns on mutual TLS; principal = URI SAN (SPIFFE id), else cn:<subject CN>" },
  KMS_ANONYMOUS_PRINCIPAL: { default: "", doc: "opt-in: the one principal every caller of a TLS listener without KMS_TLS_CLIENT_CA or a JWKS gets (never an admin or auditor); unset, such a listener refuses to start" },
  KMS_INSECURE_DEV_MODE: { default: "false", doc: "true: plaintext on loopback without a JWKS, every caller is \"dev\", an administrator (npm start and the tests set it); no effect with TLS or a JWKS" },
  KMS_JWT_JWKS_FILE: { default: "", doc: "JWKS file for bearer JWTs (principal = sub)" },
  KMS_JWT_JWKS_URL: { default: "", doc: "https JWKS URL for bearer JWTs (fetched at start, refreshed on unknown kid); http only on a loopback host" },
  KMS_JWT_ISSUER: { default: "", doc: "required iss of bearer JWTs" },
  KMS_JWT_AUDIENCE: { default: "", doc: "required aud of bearer JWTs" },
  KMS_ADMINS: { default: "", doc: "comma-separated principals given every action by each new key's default policy" },
  KMS_CREATORS: { default: "*", doc: "comma-separated principals who may CreateKey, ListKeys and ListAliases (* = any authenticated caller)" },
  KMS_ALIAS_PREFIXES: { default: "", doc: "who may create, move and delete which aliases: principal=prefix[,prefix] entries separated by ; (principal * = everyone); KMS_ADMINS may use any name; unset: only KMS_ADMINS" },
  KMS_DB_STATEMENT_TIMEOUT_MS: { default: "5000", doc: "Postgres statement_timeout of kms-api's connections: no statement runs longer, whatever the call's deadline" },
  KMS_AUDITORS: { default: "", doc: "comma-separated principals who may ListAuditEvents, VerifyAuditLog and ListAuditCheckpoints (besides KMS_ADMINS)" },
  KMS_SHUTDOWN_GRACE_MS: { default: "10000", doc: "how long SIGTERM waits for in-flight calls" },
  KMS_RATE_LIMIT_PER_SECOND: { default: "2000", doc: "requests per second each principal may make (token bucket); over it: RESOURCE_EXHAUSTED, Throttling" },
  KMS_RATE_LIMIT_BURST: { default: "4000", doc: "requests a principal may make at once above its rate (the bucket's size)" },
  KMS_RATE_LIMIT_DELAY_MS: { default: "1000", doc: "how long a throttled call waits before its RESOURCE_EXHAUSTED (± 50 %, never past the caller's deadline), so that a client retrying in a tight loop cannot turn the limit into a flood of cheap rejections" },
  KMS_RATE_LIMIT_THROTTLED_IN_FLIGHT: { default: "4", doc: "calls a principal throttled in the last 2 s may have in progress at once; its others wait their turn, so that a flood's bursts do not hold up other principals' calls" },
  KMS_AUTH_FAILURES_PER_SECOND: { default: "10", doc: "failed authentications per second each peer (client certificate, else client address) may cause; once its budget is spent, its calls are refused with RESOURCE_EXHAUSTED, Throttling before any token is verified" },
  KMS_AUTH_FAILURE_BURST: { default: "100", doc: "failed authentications a peer may cause at once above that rate (its budget's size)" },
  KMS_AUDIT_REFUSAL_WINDOW_MS: { default: "5000", doc: "refused calls (UNAUTHENTICATED, RESOURCE_EXHAUSTED Throttling) are audited per (principal or peer, operation, reason): the first in each window gets its own row, the rest one summary row with their count when the window ends (and at shutdown)" },
  KMS_MAX_REQUEST_BYTES: { default: "4194304", doc: "largest request message kms-api accepts (grpc.max_receive_message_length)" },
  KMS_MAX_CONCURRENT_STREAMS: { default: "256", doc: "concurrent calls per client connection (grpc.max_concurrent_streams)" },
  KMS_FAULT_INJECT: { default: "", doc: "TEST ONLY: crash-after-generate makes kms-api SIGKILL itself between key generation and the database insert; audit-write-fail fails every audit write" },
  KMS_CREATE_ROOT_KEY: { default: "false", doc: "true: a worker that finds no root key on its token creates one (first start only); false: it fails closed" },
  KMS_PLUGIN_LISTEN: { default: "", doc: "kube-kms-plugin: unix:///absolute/path of the socket kube-apiserver calls (created 0600 in a 0700 directory of its own); required" },
  KMS_PLUGIN_KEY_ID: { default: "", doc: "kube-kms-plugin: the CMK (key id or alias/<name>) that encrypts the cluster's data-encryption seeds; required" },
  KMS_PLUGIN_CLUSTER: { default: "", doc: "kube-kms-plugin: the cluster's name, bound into every ciphertext as encryption context k8s-cluster; required" },
  KMS_ADDR: { default: "127.0.0.1:7300", doc: "kube-kms-plugin and the CLI: host:port of kms-api; plaintext (no KMS_TLS_CA) only to a loopback host" },
  KMS_TLS_CA: { default: "", doc: "kube-kms-plugin: CA bundle (PEM) of kms-api's server certificate; turns on TLS to kms-api" },
  KMS_JWT_TOKEN_FILE: { default: "", doc: "kube-kms-plugin: file with a bearer JWT for kms-api (e.g. a projected service-account token; re-read every minute); needs KMS_TLS_CA" },
  KMS_LOG_LEVEL: { default: "info", doc: "error, warn, info or debug" },
  OTEL_EXPORTER_OTLP_ENDPOINT: { default: "", doc: "OTLP/HTTP collector URL (e.g. http://otel-collector:4318): set, traces and metrics are exported (read by the OpenTelemetry SDK, with the other standard OTEL_EXPORTER_OTLP_* variables)" },
  OTEL_SERVICE_NAME: { default: "(kms-api, hsm-worker)", doc: "service.name of exported traces and metrics" },
  OTEL_METRIC_EXPORT_INTERVAL: { default: "30000", doc: "milliseconds between metric exports (OTEL_METRIC_EXPORT_TIMEOUT bounds each, at most the interval)" },
} as const;
export type VariableName = keyof typeof VARIABLES;

export function raw(env: Env, name: VariableName): string | undefined {
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

function moduleProfile(env: Env): "auto" | "softhsm2" | "native" {
  const value = raw(env, "KMS_PKCS11_PROFILE") ?? "auto";
  if (value !== "auto" && value !== "softhsm2" && value !== "native") {
    throw new ConfigError("KMS_PKCS11_PROFILE", `must be auto, softhsm2 or native, got ${JSON.stringify(value)}`);
  }
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
export function logLevel(env: Env): LogLevel {
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
  /** KMS_PKCS11_PROFILE: the module's capability profile, or auto (from C_GetInfo). */
  profile: "auto" | "softhsm2" | "native";
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
          },
    allowSoftwareRoot: boolean(env, "KMS_ALLOW_SOFTWARE_ROOT", false),
    keyCacheSize: integer(env, "KMS_KEY_CACHE_SIZE", 10000, 1, 10_000_000),
    logLevel: logLevel(env),
    keyGeneration: keyGeneration(env),
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
  /** KMS_ALIAS_PREFIXES: principal (or "*") → alias name prefixes it may manage. */
  aliasPrefixes: Record<string, string[]>;
}

/** The AWS KMS-compatible listener (services/kms-api/src/fronts/aws). */
export interface AwsConfig {
  listen: ListenAddress;
  region: string;
  accountId: string;
  accessKeysFile: string;
}

export interface ApiConfig {
  listen: ListenAddress;
  /** KMS_AWS_LISTEN: absent, the AWS-compatible API is off. */
  aws: AwsConfig | undefined;
  /** Plaintext, health service only; absent: health is served on the main port only. */
  healthListen: ListenAddress | undefined;
  /** Absent: plaintext (allowed on loopback only). */
  tls: TlsConfig | undefined;
  jwt: JwtConfig | undefined;
  /** Plaintext, no JWKS and KMS_INSECURE_DEV_MODE=true: every caller is "dev", an administrator. */
  devMode: boolean;
  /** KMS_ANONYMOUS_PRINCIPAL: the principal of every caller of a TLS listener without client authentication. */
  anonymousPrincipal: string | undefined;
  access: AccessConfig;
  /** Required by kms-api itself; the dev stack sets it to its embedded Postgres. */
  databaseUrl: string;
  workerSocket: string;
  workerDeadlineMs: number;
  /** Every statement's ceiling on kms-api's Postgres connections. */
  dbStatementTimeoutMs: number;
  rotateAfterEncryptions: number;
  /** KMS_IMPORTED_KEY_MAX_ENCRYPTIONS: the hard limit of a version that cannot rotate. */
  importedKeyMaxEncryptions: number;
  jobIntervalMs: number;
  /** KMS_AUDIT_CHECKPOINT_INTERVAL: signed audit checkpoints at least this often. */
  auditCheckpointIntervalMs: number;
  dbNotifications: boolean;
  /** KMS_METADATA_CACHE_TTL_MS: key and alias metadata cache lifetime; 0 = no cache. */
  metadataCacheTtlMs: number;
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
  /** Token bucket per peer, spent by failed authentications and checked before authenticating. */
  authFailuresPerSecond: number;
  authFailureBurst: number;
  /** Window of the refusal audit's summary rows (refusals.ts). */
  refusalWindowMs: number;
  maxRequestBytes: number;
  maxConcurrentStreams: number;
}

export function readPem(env: Env, name: VariableName): Buffer | undefined {
  const file = raw(env, name);
  if (file === undefined) return undefined;
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(name, `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

/** KMS_TLS_CERT must be a PEM certificate and KMS_TLS_KEY its private key (kms-api's and its clients'). */
export function checkCertificateAndKey(cert: Buffer, key: Buffer): void {
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
  checkCertificateAndKey(cert, key);
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
    // Keys fetched in clear text from another host could be swapped on the way: anyone could mint tokens.
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      parsed = undefined;
    }
    const loopbackHttp = parsed?.protocol === "http:" && isLoopback(parsed.hostname.replace(/^\[(.*)\]$/, "$1"));
    if (parsed?.protocol !== "https:" && !loopbackHttp) {
      throw new ConfigError("KMS_JWT_JWKS_URL", `must be an https URL (http only on a loopback host), got ${JSON.stringify(url)}`);
    }
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

const ALIAS_PREFIX = /^alias\/[a-zA-Z0-9:/_-]*$/;

/** `principal=alias/a/,alias/b/;other=alias/c/`: split at each entry's last "=" (prefixes have none). */
function aliasPrefixes(env: Env): Record<string, string[]> {
  const result: Record<string, string[]> = {};
  for (const entry of (raw(env, "KMS_ALIAS_PREFIXES") ?? "").split(";").map((e) => e.trim()).filter((e) => e !== "")) {
    const at = entry.lastIndexOf("=");
    const principal = entry.slice(0, Math.max(at, 0)).trim();
    const prefixes = entry.slice(at + 1).split(",").map((p) => p.trim()).filter((p) => p !== "");
    if (at <= 0 || principal === "" || prefixes.length === 0) {
      throw new ConfigError("KMS_ALIAS_PREFIXES", `entry ${JSON.stringify(entry)} must be principal=alias/prefix[,alias/prefix]`);
    }
    for (const p of prefixes) {
      if (!ALIAS_PREFIX.test(p)) throw new ConfigError("KMS_ALIAS_PREFIXES", `prefix ${JSON.stringify(p)} must be "alias/" followed by [a-zA-Z0-9:/_-]`);
    }
    result[principal] = [...(result[principal] ?? []), ...prefixes];
  }
  return result;
}

function anonymousPrincipal(env: Env): string | undefined {
  const name = raw(env, "KMS_ANONYMOUS_PRINCIPAL");
  if (name === undefined) return undefined;
  // It appears in access lists (comma-separated), policies ("*" is everyone) and audit rows (Postgres text).
  if (name === "*" || /[,\s\u0000-\u001f]/.test(name) || !name.isWellFormed() || name.length > 256) {
    throw new ConfigError("KMS_ANONYMOUS_PRINCIPAL", `must be a principal name (no "*", commas, spaces or control characters; at most 256), got ${JSON.stringify(name)}`);
  }
  return name;
}

/**
 * Who a caller is must come from something it shows (a client certificate or a bearer JWT). Without
 * either, every caller shares one principal, so that is refused unless explicitly asked for: a TLS
 * listener names the shared principal in KMS_ANONYMOUS_PRINCIPAL, plaintext dev mode (every caller the
 * administrator "dev") needs KMS_INSECURE_DEV_MODE=true, because in a pod loopback is shared with
 * sidecars and proxies.
 */
function callerAuthentication(env: Env, tls: TlsConfig | undefined, jwt: JwtConfig | undefined, access: AccessConfig) {
  const anonymous = anonymousPrincipal(env);
  const insecureDevMode = boolean(env, "KMS_INSECURE_DEV_MODE", false);
  const authenticated = tls?.clientCa !== undefined || jwt !== undefined;
  if (authenticated) {
    if (anonymous !== undefined) throw new ConfigError("KMS_ANONYMOUS_PRINCIPAL", "callers authenticate (KMS_TLS_CLIENT_CA or a JWKS is set): unset it");
    return { devMode: false, anonymousPrincipal: undefined };
  }
  if (!tls) {
    if (anonymous !== undefined) throw new ConfigError("KMS_ANONYMOUS_PRINCIPAL", "is for a TLS listener (KMS_TLS_CERT, KMS_TLS_KEY); plaintext dev mode is KMS_INSECURE_DEV_MODE");
    if (!insecureDevMode) {
      throw new ConfigError(
        "KMS_INSECURE_DEV_MODE",
        'plaintext without a JWKS makes every caller on loopback (in a pod: every sidecar and proxy) the administrator "dev"; ' +
          "set KMS_INSECURE_DEV_MODE=true for a local dev stack, else KMS_TLS_CERT and KMS_TLS_KEY with KMS_TLS_CLIENT_CA, or a JWKS (KMS_JWT_JWKS_FILE or KMS_JWT_JWKS_URL)",
      );
    }
    return { devMode: true, anonymousPrincipal: undefined };
  }
  if (anonymous === undefined) {
    throw new ConfigError(
      "KMS_TLS_CLIENT_CA",
      "a TLS listener needs client authentication: set KMS_TLS_CLIENT_CA or a JWKS (KMS_JWT_JWKS_FILE or KMS_JWT_JWKS_URL), " +
        "or name the one principal every caller then shares in KMS_ANONYMOUS_PRINCIPAL",
    );
  }
  for (const list of ["KMS_ADMINS", "KMS_AUDITORS"] as const) {
    const names = list === "KMS_ADMINS" ? access.admins : access.auditors;
    if (names.includes(anonymous) || names.includes("*")) {
      throw new ConfigError(list, `must not include KMS_ANONYMOUS_PRINCIPAL (${anonymous}) or "*": every caller would be one`);
    }
  }
  return { devMode: false, anonymousPrincipal: anonymous };
}

/**
 * With KMS_REQUIRE_DATABASE_TLS=true, the URL must ask for verified TLS: postgres.js reads the last
 * `sslmode` of the query string, and only verify-full checks both the certificate and the host name
 * (require, prefer and allow accept any certificate; disable and no sslmode send everything in clear).
 */
export function checkDatabaseTls(env: Env, databaseUrl: string): void {
  if (!boolean(env, "KMS_REQUIRE_DATABASE_TLS", false)) return;
  const query = databaseUrl.includes("?") ? databaseUrl.slice(databaseUrl.indexOf("?") + 1).split("#")[0]! : "";
  const sslmode = new URLSearchParams(query).getAll("sslmode").at(-1);
  if (sslmode !== "verify-full") {
    throw new ConfigError(
      "DATABASE_URL",
      `must set sslmode=verify-full when KMS_REQUIRE_DATABASE_TLS=true (it has ${sslmode === undefined ? "no sslmode" : `sslmode=${sslmode}`})`,
    );
  }
}

const AWS_REGION = /^[a-z]{2}(-[a-z0-9]+)+-\d+$/;

/** KMS_AWS_*: the listener is off without KMS_AWS_LISTEN; with it, plaintext only on loopback in dev mode. */
function awsConfig(env: Env, tls: TlsConfig | undefined): AwsConfig | undefined {
  const value = raw(env, "KMS_AWS_LISTEN");
  if (value === undefined) return undefined;
  const listen = parseListen(value, "KMS_AWS_LISTEN");
  if (!tls && !(isLoopback(listen.host) && boolean(env, "KMS_INSECURE_DEV_MODE", false))) {
    throw new ConfigError("KMS_AWS_LISTEN", `plaintext HTTP only on loopback with KMS_INSECURE_DEV_MODE=true, got ${listen.host}; set KMS_TLS_CERT and KMS_TLS_KEY`);
  }
  const region = raw(env, "KMS_AWS_REGION") ?? VARIABLES.KMS_AWS_REGION.default;
  if (!AWS_REGION.test(region)) throw new ConfigError("KMS_AWS_REGION", `must be a region name such as us-east-1, got ${JSON.stringify(region)}`);
  const accountId = raw(env, "KMS_AWS_ACCOUNT_ID") ?? VARIABLES.KMS_AWS_ACCOUNT_ID.default;
  if (!/^\d{12}$/.test(accountId)) throw new ConfigError("KMS_AWS_ACCOUNT_ID", `must be 12 digits, got ${JSON.stringify(accountId)}`);
  const accessKeysFile = raw(env, "KMS_AWS_ACCESS_KEYS_FILE");
  if (accessKeysFile === undefined) throw new ConfigError("KMS_AWS_ACCESS_KEYS_FILE", "is required with KMS_AWS_LISTEN");
  return { listen, region, accountId, accessKeysFile: path.resolve(accessKeysFile) };
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
  checkDatabaseTls(env, databaseUrl);
  const health = raw(env, "KMS_HEALTH_LISTEN");
  const access = {
    admins: principals(env, "KMS_ADMINS"),
    creators: principals(env, "KMS_CREATORS"),
    auditors: principals(env, "KMS_AUDITORS"),
    aliasPrefixes: aliasPrefixes(env),
  };
  return {
    listen,
    healthListen: health === undefined ? undefined : parseListen(health, "KMS_HEALTH_LISTEN"),
    aws: awsConfig(env, tls),
    tls,
    jwt,
    ...callerAuthentication(env, tls, jwt, access),
    access,
    databaseUrl,
    workerSocket: workerSocket(env),
    workerDeadlineMs: integer(env, "KMS_WORKER_DEADLINE_MS", 5000, 10, 600_000),
    dbStatementTimeoutMs: integer(env, "KMS_DB_STATEMENT_TIMEOUT_MS", 5000, 100, 600_000),
    rotateAfterEncryptions: integer(env, "KMS_ROTATE_AFTER_ENCRYPTIONS", 2 ** 30, 1, 2 ** 32),
    // Never above 2^32: past it, random 96-bit GCM IVs collide with a probability above 2^-32.
    importedKeyMaxEncryptions: integer(env, "KMS_IMPORTED_KEY_MAX_ENCRYPTIONS", 2 ** 31, 1, 2 ** 32),
    jobIntervalMs: integer(env, "KMS_JOB_INTERVAL_MS", 60_000, 10, 86_400_000),
    auditCheckpointIntervalMs: duration(env, "KMS_AUDIT_CHECKPOINT_INTERVAL", 100, 86_400_000),
    dbNotifications: boolean(env, "KMS_DB_NOTIFICATIONS", true),
    metadataCacheTtlMs: integer(env, "KMS_METADATA_CACHE_TTL_MS", 1000, 0, 60_000),
    shutdownGraceMs: integer(env, "KMS_SHUTDOWN_GRACE_MS", 10000, 0, 600_000),
    logLevel: logLevel(env),
    limits: {
      ratePerSecond: integer(env, "KMS_RATE_LIMIT_PER_SECOND", 2000, 1, 10_000_000),
      burst: integer(env, "KMS_RATE_LIMIT_BURST", 4000, 1, 10_000_000),
      rejectDelayMs: integer(env, "KMS_RATE_LIMIT_DELAY_MS", 1000, 0, 10_000),
      throttledMaxInFlight: integer(env, "KMS_RATE_LIMIT_THROTTLED_IN_FLIGHT", 4, 1, 100_000),
      authFailuresPerSecond: integer(env, "KMS_AUTH_FAILURES_PER_SECOND", 10, 1, 10_000_000),
      authFailureBurst: integer(env, "KMS_AUTH_FAILURE_BURST", 100, 1, 10_000_000),
      refusalWindowMs: integer(env, "KMS_AUDIT_REFUSAL_WINDOW_MS", 5000, 10, 3_600_000),
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
