// Every variable the services read, with its default and meaning (the README's table mirrors this
// list), and the one error a bad value gives.
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
  KMS_SOURCE_ROOT_KEY_FILE: { default: "", doc: "with KMS_PKCS11_MODULE: the software root file (KMS_DATA_DIR/root-key) of a worker that ran without an HSM; its SOFTWARE keys keep working (unwrap only) and `kms admin rotate-root` moves them onto the token, after which the variable and the file can be removed" },
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
  KMS_ROOT_RETIRE_DELAY_MS: { default: "120000", doc: "how long a root rotation (kms admin rotate-root) waits after its last re-wrap before destroying the old roots on the token: longer than kms-api's key version cache (60 s, for a lost notification) plus the longest call, so that no replica still uses an old blob" },
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
