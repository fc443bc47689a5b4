import { metrics } from "@opentelemetry/api";
import { DataPointType, MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import type { DataPoint, MetricData } from "@opentelemetry/sdk-metrics";
import {
  METRIC_AUDIT_BATCH_DURATION,
  METRIC_AUDIT_BATCH_SIZE,
  METRIC_CACHE_HITS,
  METRIC_CACHE_HIT_RATIO,
  METRIC_CACHE_MISSES,
  METRIC_HSM_SESSIONS_IN_USE,
  METRIC_HSM_SESSIONS_WAITING,
  METRIC_REQUESTS,
  METRIC_REQUEST_DURATION,
  hitRatio,
  observeCache,
  observeHsmSessions,
  recordAuditBatch,
  recordRequest,
} from "./metrics";

class TestReader extends MetricReader {
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
}

const reader = new TestReader();
const provider = new MeterProvider({ readers: [reader] });

beforeAll(() => metrics.setGlobalMeterProvider(provider));
afterAll(async () => {
  await provider.shutdown();
  metrics.disable();
});

async function collect(): Promise<Map<string, MetricData>> {
  const { resourceMetrics } = await reader.collect();
  const out = new Map<string, MetricData>();
  for (const scope of resourceMetrics.scopeMetrics) for (const m of scope.metrics) out.set(m.descriptor.name, m);
  return out;
}

function points(m: MetricData | undefined): DataPoint<unknown>[] {
  return (m?.dataPoints ?? []) as DataPoint<unknown>[];
}

describe("metric instruments", () => {
  it("counts requests and records their latency by method and status", async () => {
    recordRequest("Encrypt", "OK", 3);
    recordRequest("Encrypt", "OK", 7);
    recordRequest("Decrypt", "INVALID_ARGUMENT", 1);
    const m = await collect();
    expect(points(m.get(METRIC_REQUESTS)).map((p) => [p.attributes, p.value])).toEqual([
      [{ "rpc.method": "Encrypt", "kms.status": "OK" }, 2],
      [{ "rpc.method": "Decrypt", "kms.status": "INVALID_ARGUMENT" }, 1],
    ]);
    const duration = m.get(METRIC_REQUEST_DURATION)!;
    expect(duration.dataPointType).toBe(DataPointType.HISTOGRAM);
    expect(duration.descriptor.unit).toBe("ms");
    expect(points(duration).map((p) => [p.attributes, (p.value as { count: number; sum: number }).count, (p.value as { sum: number }).sum])).toEqual([
      [{ "rpc.method": "Encrypt", "kms.status": "OK" }, 2, 10],
      [{ "rpc.method": "Decrypt", "kms.status": "INVALID_ARGUMENT" }, 1, 1],
    ]);
  });

  it("records audit batch sizes and durations", async () => {
    recordAuditBatch(5, 12);
    recordAuditBatch(1, 4);
    const m = await collect();
    expect(points(m.get(METRIC_AUDIT_BATCH_SIZE)).map((p) => p.value)).toMatchObject([{ count: 2, sum: 6, min: 1, max: 5 }]);
    expect(points(m.get(METRIC_AUDIT_BATCH_DURATION)).map((p) => p.value)).toMatchObject([{ count: 2, sum: 16 }]);
  });

  it("reports session pool counts and cache hits, misses and hit ratio when collected", async () => {
    const pool = { inUse: 3, waiting: 2 };
    const stopPool = observeHsmSessions(() => pool);
    const cache = { hits: 0, misses: 0 };
    const stopCache = observeCache("key_metadata", () => cache);
    cache.hits = 3;
    cache.misses = 1;
    let m = await collect();
    expect(points(m.get(METRIC_HSM_SESSIONS_IN_USE)).map((p) => p.value)).toEqual([3]);
    expect(points(m.get(METRIC_HSM_SESSIONS_WAITING)).map((p) => p.value)).toEqual([2]);
    expect(points(m.get(METRIC_CACHE_HITS)).map((p) => [p.attributes, p.value])).toEqual([[{ "kms.cache": "key_metadata" }, 3]]);
    expect(points(m.get(METRIC_CACHE_MISSES)).map((p) => [p.attributes, p.value])).toEqual([[{ "kms.cache": "key_metadata" }, 1]]);
    expect(points(m.get(METRIC_CACHE_HIT_RATIO)).map((p) => [p.attributes, p.value])).toEqual([[{ "kms.cache": "key_metadata" }, 0.75]]);
    pool.inUse = 1;
    m = await collect();
    expect(points(m.get(METRIC_HSM_SESSIONS_IN_USE)).map((p) => p.value)).toEqual([1]);
    stopPool();
    stopCache();
  });

  it("computes the hit ratio as 0 before any lookup", () => {
    expect(hitRatio({ hits: 0, misses: 0 })).toBe(0);
    expect(hitRatio({ hits: 1, misses: 3 })).toBe(0.25);
  });
});
