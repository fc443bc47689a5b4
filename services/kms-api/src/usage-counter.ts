// Rotation by use: counts encryptions per key version in memory and adds them to Postgres in batches
// (never one write per request). When a version's total reaches the threshold while it is still the
// primary, the key gets a new primary version. A crash loses at most one unflushed batch per version,
// so the count never undercounts by more than `batchSize`.
import { withoutDeadline } from "@kms/db";
import type { KeyRecord } from "@kms/db";
import { kmsResources } from "@kms/proto";
import type { Services } from "./context";
import { addVersion } from "./key-changes";
import { describeError } from "./log";

export interface UsageOptions {
  /** Encryptions after which a primary version is replaced (KMS_ROTATE_AFTER_ENCRYPTIONS). */
  threshold: number;
  /** Flush a version's count once this many are pending; also flushed every `flushIntervalMs`. */
  batchSize: number;
  flushIntervalMs: number;
}

/** A batch small enough that a crash cannot undercount much, and never more than 1% of the threshold. */
export function defaultBatchSize(threshold: number): number {
  return Math.max(1, Math.min(1000, Math.floor(threshold / 100)));
}

export class UsageCounter {
  private pending = new Map<string, { keyId: string; count: number }>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private services: Services | undefined;

  constructor(private readonly options: UsageOptions) {}

  /** Starts the periodic flush. Services are passed late because they contain this counter. */
  start(services: Services): void {
    this.services = services;
    this.timer = setInterval(() => void this.flush(), this.options.flushIntervalMs);
    this.timer.unref();
  }

  /** One encryption under `keyVersionId` of `keyId`. */
  record(keyId: string, keyVersionId: string): void {
    const entry = this.pending.get(keyVersionId) ?? { keyId, count: 0 };
    entry.count++;
    this.pending.set(keyVersionId, entry);
    if (entry.count >= this.options.batchSize) void this.flush();
  }

  /** Writes every pending count; rotates keys whose primary crossed the threshold. */
  flush(): Promise<void> {
    // Often started by a call; the flush (and a rotation) outlives it: not bounded by its deadline.
    this.flushing = this.flushing.then(() => withoutDeadline(() => this.flushNow()));
    return this.flushing;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush();
  }

  private async flushNow(): Promise<void> {
    const s = this.services;
    if (!s || this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    for (const [keyVersionId, { keyId, count }] of batch) {
      try {
        const total = await s.store.addEncryptions(keyVersionId, count);
        if (total >= this.options.threshold) await this.rotateIfStillPrimary(s, keyId, keyVersionId);
      } catch (err) {
        // Put the count back so it is not lost; the next flush retries.
        const entry = this.pending.get(keyVersionId) ?? { keyId, count: 0 };
        entry.count += count;
        this.pending.set(keyVersionId, entry);
        s.log.warn("usage count flush failed", { keyVersionId, ...describeError(err) });
      }
    }
  }

  /** Under the key's row lock: only the replica that still sees the old primary makes a new one. */
  private async rotateIfStillPrimary(s: Services, keyId: string, keyVersionId: string): Promise<void> {
    const rotated = await s.store.transaction(async (tx) => {
      const key: KeyRecord | undefined = await s.store.lockKey(tx, keyId);
      // Imported material cannot be regenerated here: such keys are re-imported by their owner instead.
      if (!key || key.primaryKeyVersionId !== keyVersionId || key.keyState !== 1 || key.origin === kmsResources.Origin.EXTERNAL) return false;
      await addVersion(s, tx, key, undefined);
      return true;
    });
    if (rotated) s.keys.invalidateKey(keyId);
    if (rotated) s.log.info("key rotated by use", { keyId, previousVersion: keyVersionId, threshold: this.options.threshold });
  }
}
