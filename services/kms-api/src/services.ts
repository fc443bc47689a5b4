// Builds the objects the handlers share, for main.ts and for tests (which inject a clock).
import { randomBytes } from "node:crypto";
import type { AccessConfig } from "@kms/config";
import { AliasStore, AuditReader, AuditWriter, GrantStore, KeyStore, RootRotationStore, Transactions } from "@kms/db";
import { PolicyEngine } from "@kms/key-policy";
import { observeCache, recordAuditBatch } from "@kms/telemetry";
import type { Sql } from "@kms/db";
import type { Services } from "./context";
import type { Logger } from "@kms/telemetry";
import { AuditCheckpointer } from "./audit-checkpoints";
import { Authorizer } from "./auth/authorize";
import { CallsInProgress } from "./calls-in-progress";
import { GrantTokens } from "./grant-tokens";
import { KeyLookup } from "./keys";
import { rotateIfStillPrimary } from "./jobs/rotation-by-use";
import { failurePoint } from "./fault-injection";
import { KeyCache } from "./key-cache";
import { RateLimiter } from "./limits";
import { PeerThrottle } from "./peer-throttle";
import { RefusalAudit } from "./refusals";
import { PageTokens } from "./page-tokens";
import { DEFAULT_MAX_ENCRYPTIONS_WITHOUT_ROTATION, UsageCounter, defaultBatchSize } from "./usage-counter";
import { WorkerClient } from "./worker-client";

export interface ServicesOptions {
  sql: Sql;
  workerSocket: string;
  workerDeadlineMs: number;
  rotateAfterEncryptions: number;
  /** Default DEFAULT_MAX_ENCRYPTIONS_WITHOUT_ROTATION (2^31). */
  importedKeyMaxEncryptions?: number;
  log: Logger;
  access: AccessConfig;
  clock?: () => Date;
  usageFlushIntervalMs?: number;
  /** KMS_METADATA_CACHE_TTL_MS (default 1000). */
  metadataCacheTtlMs?: number;
  /** KMS_ROOT_RETIRE_DELAY_MS (default 120000). */
  rootRetireDelayMs?: number;
  /** Per-principal rate limit (limits.ts); absent: none. */
  rateLimit?: { ratePerSecond: number; burst: number; rejectDelayMs: number; throttledMaxInFlight: number };
  /** Per-peer budget of failed authentications (peer-throttle.ts); absent: none. */
  authFailures?: { authFailuresPerSecond: number; authFailureBurst: number };
  /** Window of the refusal audit's summary rows (refusals.ts); absent: a row per refused call. */
  refusalWindowMs?: number;
}

export async function createServices(o: ServicesOptions): Promise<Services> {
  const store = new KeyStore(o.sql);
  const aliases = new AliasStore(o.sql);
  const worker = new WorkerClient(o.workerSocket, o.workerDeadlineMs);
  const audit = new AuditWriter(o.sql);
  const calls = new CallsInProgress();
  worker.batcher.alone = calls.alone;
  audit.alone = calls.alone;
  const policies = new PolicyEngine();
  const authorizer = new Authorizer(policies, o.access);
  const grants = new GrantStore(o.sql);
  const grantTokens = new GrantTokens(await store.sharedSecret("grant-token-mac", randomBytes(32)));
  const keys = new KeyCache(store, aliases, o.metadataCacheTtlMs === undefined ? {} : { keyTtlMs: o.metadataCacheTtlMs }, grants);
  const auditReader = new AuditReader(o.sql);
  const services: Services = {
    store,
    transactions: new Transactions(o.sql, audit),
    keys,
    lookup: new KeyLookup(keys, store, authorizer, { store: grants, tokens: grantTokens }),
    aliases,
    grants,
    grantTokens,
    usage: new UsageCounter({
      threshold: o.rotateAfterEncryptions,
      batchSize: defaultBatchSize(o.rotateAfterEncryptions),
      flushIntervalMs: o.usageFlushIntervalMs ?? 1000,
      maxWithoutRotation: o.importedKeyMaxEncryptions ?? DEFAULT_MAX_ENCRYPTIONS_WITHOUT_ROTATION,
    }),
    worker,
    audit,
    auditReader,
    checkpoints: new AuditCheckpointer(o.sql, { audit, auditReader, worker, log: o.log }),
    policies,
    authorizer,
    access: o.access,
    rotations: new RootRotationStore(o.sql),
    rootRetireDelayMs: o.rootRetireDelayMs ?? 120_000,
    pageTokens: new PageTokens(await store.sharedSecret("page-token-mac", randomBytes(32))),
    log: o.log,
    clock: o.clock ?? (() => new Date()),
    calls,
  };
  if (o.rateLimit) services.rateLimiter = new RateLimiter(o.rateLimit);
  if (o.authFailures) services.peerThrottle = new PeerThrottle(o.authFailures);
  if (o.refusalWindowMs !== undefined) {
    services.refusals = new RefusalAudit(services.audit, o.refusalWindowMs, o.log);
    services.refusals.start();
  }
  // Metrics (no-ops unless the OpenTelemetry SDK is running): audit group commits, cache hit ratios.
  services.audit.onBatch = recordAuditBatch;
  observeCache("key_metadata", () => ({ hits: services.keys.hits, misses: services.keys.misses }));
  observeCache("key_policy", () => ({ hits: services.policies.hits, misses: services.policies.misses }));
  services.audit.beforeWrite = () => failurePoint("audit-write-fail"); // test-only, off by default
  services.audit.onRewind = (err) =>
    o.log.error("audit chain rewound: rows were cut and the head moved back by hand; refusing every audit write", {
      headSequence: err.found.sequence,
      seenSequence: err.known.sequence,
    });
  services.audit.onTampering = (sequence) =>
    o.log.error("audit rows found after the recorded head: the trail was edited by hand", { firstForgedSequence: sequence });
  services.usage.start({ store, log: o.log, onThreshold: (keyId, keyVersionId) => rotateIfStillPrimary(services, keyId, keyVersionId, o.rotateAfterEncryptions) });
  return services;
}
