// The service's metric instruments. The metrics API has no proxy provider (unlike tracing): an
// instrument made before the SDK is registered stays a no-op. So instruments are made on first use and
// made again if the global meter provider changed since (startTelemetry runs first in each process;
// tests register their own provider).
import { metrics } from "@opentelemetry/api";
import type { Counter, Histogram, Meter, MeterProvider } from "@opentelemetry/api";
import { ATTR_KMS_CACHE, ATTR_KMS_STATUS, ATTR_RPC_METHOD } from "./attributes";
import { INSTRUMENTATION_NAME } from "./tracing";

export const METRIC_REQUESTS = "kms.requests";
export const METRIC_REQUEST_DURATION = "kms.request.duration";
export const METRIC_HSM_SESSIONS_IN_USE = "kms.hsm.sessions.in_use";
export const METRIC_HSM_SESSIONS_WAITING = "kms.hsm.sessions.waiting";
export const METRIC_AUDIT_BATCH_SIZE = "kms.audit.batch.size";
export const METRIC_AUDIT_BATCH_DURATION = "kms.audit.batch.duration";
export const METRIC_CACHE_HITS = "kms.cache.hits";
export const METRIC_CACHE_MISSES = "kms.cache.misses";
export const METRIC_CACHE_HIT_RATIO = "kms.cache.hit_ratio";

/** Milliseconds: a cache hit answers in about one, an RSA-4096 key generation in seconds. */
const DURATION_BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
const BATCH_SIZE_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000];

/** The meter of the registered provider (a no-op one until an SDK is registered). */
export function meter(): Meter {
  return metrics.getMeter(INSTRUMENTATION_NAME);
}

export interface SessionCounts {
  inUse: number;
  waiting: number;
}
export interface CacheCounts {
  hits: number;
  misses: number;
}

const sessionSources = new Set<() => SessionCounts>();
const cacheSources = new Map<string, () => CacheCounts>();

interface Instruments {
  provider: MeterProvider;
  requests: Counter;
  requestDuration: Histogram;
  auditBatchSize: Histogram;
  auditBatchDuration: Histogram;
}
let current: Instruments | undefined;

function instruments(): Instruments {
  const provider = metrics.getMeterProvider();
  if (current?.provider === provider) return current;
  const m = provider.getMeter(INSTRUMENTATION_NAME);
  const made: Instruments = {
    provider,
    requests: m.createCounter(METRIC_REQUESTS, { description: "RPCs answered, by method and gRPC status", unit: "{request}" }),
    requestDuration: m.createHistogram(METRIC_REQUEST_DURATION, {
      description: "time from receiving an RPC to its reply (audit row included), by method and gRPC status",
      unit: "ms",
      advice: { explicitBucketBoundaries: DURATION_BUCKETS_MS },
    }),
    auditBatchSize: m.createHistogram(METRIC_AUDIT_BATCH_SIZE, {
      description: "audit rows committed per group-commit transaction",
      unit: "{row}",
      advice: { explicitBucketBoundaries: BATCH_SIZE_BUCKETS },
    }),
    auditBatchDuration: m.createHistogram(METRIC_AUDIT_BATCH_DURATION, {
      description: "time to write and commit one audit batch",
      unit: "ms",
      advice: { explicitBucketBoundaries: DURATION_BUCKETS_MS },
    }),
  };
  const inUse = m.createObservableGauge(METRIC_HSM_SESSIONS_IN_USE, { description: "PKCS#11 sessions running an operation", unit: "{session}" });
  const waiting = m.createObservableGauge(METRIC_HSM_SESSIONS_WAITING, { description: "calls waiting for a free PKCS#11 session", unit: "{call}" });
  m.addBatchObservableCallback(
    (result) => {
      let busy = 0;
      let queued = 0;
      for (const source of sessionSources) {
        const counts = source();
        busy += counts.inUse;
        queued += counts.waiting;
      }
      if (sessionSources.size === 0) return;
      result.observe(inUse, busy);
      result.observe(waiting, queued);
    },
    [inUse, waiting],
  );
  const hits = m.createObservableCounter(METRIC_CACHE_HITS, { description: "cache lookups answered from the cache", unit: "{lookup}" });
  const misses = m.createObservableCounter(METRIC_CACHE_MISSES, { description: "cache lookups that had to load", unit: "{lookup}" });
  const ratio = m.createObservableGauge(METRIC_CACHE_HIT_RATIO, { description: "hits / (hits + misses) since start", unit: "1" });
  m.addBatchObservableCallback(
    (result) => {
      for (const [name, source] of cacheSources) {
        const counts = source();
        const attributes = { [ATTR_KMS_CACHE]: name };
        result.observe(hits, counts.hits, attributes);
        result.observe(misses, counts.misses, attributes);
        result.observe(ratio, hitRatio(counts), attributes);
      }
    },
    [hits, misses, ratio],
  );
  current = made;
  return made;
}

/** hits / (hits + misses); 0 before the first lookup. */
export function hitRatio(counts: CacheCounts): number {
  const total = counts.hits + counts.misses;
  return total === 0 ? 0 : counts.hits / total;
}

/** One answered RPC: `status` is the gRPC status name ("OK", "NOT_FOUND", ...). */
export function recordRequest(method: string, status: string, durationMs: number): void {
  const attributes = { [ATTR_RPC_METHOD]: method, [ATTR_KMS_STATUS]: status };
  const i = instruments();
  i.requests.add(1, attributes);
  i.requestDuration.record(durationMs, attributes);
}

/** One committed audit batch (AuditWriter.onBatch). */
export function recordAuditBatch(size: number, durationMs: number): void {
  const i = instruments();
  i.auditBatchSize.record(size);
  i.auditBatchDuration.record(durationMs);
}

/** Reports a session pool's counts on every collection; returns the function that stops it. */
export function observeHsmSessions(source: () => SessionCounts): () => void {
  instruments();
  sessionSources.add(source);
  return () => sessionSources.delete(source);
}

/** Reports a cache's hit and miss counters (and their ratio) as kms.cache=name; returns the stop function. */
export function observeCache(name: string, source: () => CacheCounts): () => void {
  instruments();
  cacheSources.set(name, source);
  return () => cacheSources.delete(name);
}
