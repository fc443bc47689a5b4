import type { AccessConfig } from "@kms/config";
import type { AliasStore, AuditReader, AuditWriter, GrantStore, KeyStore, RootRotationStore, Transactions } from "@kms/db";
import type { PolicyEngine } from "@kms/key-policy";
import type { AuditCheckpointer } from "./audit-checkpoints";
import type { CallsInProgress } from "./calls-in-progress";
import type { Authorizer } from "./auth/authorize";
import type { GrantTokens } from "./grant-tokens";
import type { KeyCache } from "./key-cache";
import type { KeyLookup } from "./keys";
import type { RateLimiter } from "./limits";
import type { PeerThrottle } from "./peer-throttle";
import type { RefusalAudit } from "./refusals";
import type { UsageCounter } from "./usage-counter";
import type { Logger } from "@kms/telemetry";
import type { PageTokens } from "./page-tokens";
import type { WorkerClient } from "./worker-client";

export type { CallContext } from "./call-context";

/** Everything the handlers share. Built once in main.ts. */
export interface Services {
  store: KeyStore;
  /** Every change runs here as a unit of work (packages/db unit-of-work.ts); never a worker call inside one. */
  transactions: Transactions;
  /** Read-through cache of key metadata for the hot path (see key-cache.ts). */
  keys: KeyCache;
  aliases: AliasStore;
  /** Grants (docs/grants.md) and the tokens that name them. */
  grants: GrantStore;
  grantTokens: GrantTokens;
  /** Counts encryptions per version and rotates a key whose primary has done too many. */
  usage: UsageCounter;
  worker: WorkerClient;
  audit: AuditWriter;
  auditReader: AuditReader;
  /** Signed checkpoints of the audit chain (audit-checkpoints.ts). */
  checkpoints: AuditCheckpointer;
  /** Parses policy documents (SetKeyPolicy validates with it) and caches their decisions. */
  policies: PolicyEngine;
  /** Every authorization decision: key policies and the access lists (auth/authorize.ts). */
  authorizer: Authorizer;
  /** Finds the keys and versions a request names, authorized (keys.ts). */
  lookup: KeyLookup;
  access: AccessConfig;
  /** Root rotation rows (root-rotation.ts). */
  rotations: RootRotationStore;
  /** KMS_ROOT_RETIRE_DELAY_MS: how long a rotation waits after its last re-wrap before destroying old roots. */
  rootRetireDelayMs: number;
  pageTokens: PageTokens;
  log: Logger;
  clock: () => Date;
  /** Calls the pipeline is working on (the batcher and the audit writer start a lone call's batch at once). */
  calls: CallsInProgress;
  /** Per-principal token bucket (limits.ts); absent: no rate limit (in-process test replicas). */
  rateLimiter?: RateLimiter;
  /** Per-peer budget of failed authentications, checked before authenticating (peer-throttle.ts); absent: none. */
  peerThrottle?: PeerThrottle;
  /** Aggregates the audit rows of refused calls (refusals.ts); absent: one row per call. */
  refusals?: RefusalAudit;
}
