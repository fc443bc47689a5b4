// kms-api's configuration: its listeners (gRPC, health, the AWS-compatible API), callers, database,
// worker, jobs, caches and overload limits.
import path from "node:path";
import { aliasPrefixes, callerAuthentication, checkDatabaseTls, jwtConfig, principals, tlsConfig } from "./auth-config";
import type { AccessConfig, JwtConfig, TlsConfig } from "./auth-config";
import { ConfigError, VARIABLES, raw } from "./variables";
import type { Env } from "./variables";
import { boolean, duration, integer, isLoopback, logLevel, parseListen, workerSocket } from "./values";
import type { ListenAddress, LogLevel } from "./values";

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
  /** KMS_ROOT_RETIRE_DELAY_MS: root rotation's wait between its last re-wrap and destroying old roots. */
  rootRetireDelayMs: number;
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
    rootRetireDelayMs: integer(env, "KMS_ROOT_RETIRE_DELAY_MS", 120_000, 0, 86_400_000),
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
