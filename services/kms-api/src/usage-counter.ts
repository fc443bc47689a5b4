// Rotation by use: counts encryptions per key version in memory and adds them to Postgres in batches
// (never one write per request). When a version's total reaches the threshold while it is still the
// primary, the key gets a new primary version (jobs/rotation-by-use.ts). A crash loses at most one unflushed batch per version,
// so the count never undercounts by more than `batchSize`.
//
// Imported (EXTERNAL) material cannot rotate by use, so its versions get a hard limit instead: with random
// 96-bit IVs one AES-GCM key may make at most 2^32 encryptions (NIST SP 800-38D §8.3) before an IV
// collision, which reveals the XOR of two plaintexts and lets the authentication key be recovered, becomes
// likelier than 2^-32. Each encryption is counted before it is made (a failed one counts too, which errs
// on the safe side), against the version's total as Postgres last reported it plus this replica's
// unflushed count. Other replicas' unflushed counts (at most a batch or one flush interval's worth each)
// are what the default limit's margin below 2^32 is for.
import { withoutDeadline } from "@kms/db";
import type { KeyRecord, KeyStore, KeyVersionRecord } from "@kms/db";
import { ErrorCode, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import type { Logger } from "@kms/telemetry";
import { describeError } from "@kms/telemetry";

/** What the counter needs once it runs: where counts go, and what to do when a primary has done enough. */
export interface UsageDeps {
  store: Pick<KeyStore, "encryptionsOf" | "addEncryptions">;
  log: Logger;
  /** The version `keyVersionId` of `keyId` has reached the threshold (jobs/rotation-by-use.ts). */
  onThreshold: (keyId: string, keyVersionId: string) => Promise<void>;
}

export interface UsageOptions {
  /** Encryptions after which a primary version is replaced (KMS_ROTATE_AFTER_ENCRYPTIONS). */
  threshold: number;
  /** Flush a version's count once this many are pending; also flushed every `flushIntervalMs`. */
  batchSize: number;
  flushIntervalMs: number;
  /** Encryptions after which a version that cannot rotate (imported material) refuses more (KMS_IMPORTED_KEY_MAX_ENCRYPTIONS). */
  maxWithoutRotation: number;
}

/** The default of KMS_IMPORTED_KEY_MAX_ENCRYPTIONS: half the 2^32 AES-GCM bound, the rest a margin for unflushed counts. */
export const DEFAULT_MAX_ENCRYPTIONS_WITHOUT_ROTATION = 2 ** 31;

/** A batch small enough that a crash cannot undercount much, and never more than 1% of the threshold. */
export function defaultBatchSize(threshold: number): number {
  return Math.max(1, Math.min(1000, Math.floor(threshold / 100)));
}

export class UsageCounter {
  private pending = new Map<string, { keyId: string; count: number }>();
  /** Versions that cannot rotate: their total as Postgres last reported it (loaded on first use). */
  private flushed = new Map<string, Promise<number> | number>();
  /** The batch being written: counted by take() until Postgres has returned its new total. */
  private writing = new Map<string, { keyId: string; count: number }>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private deps: UsageDeps | undefined;

  constructor(private readonly options: UsageOptions) {}

  /** Starts the periodic flush. */
  start(deps: UsageDeps): void {
    this.deps = deps;
    this.timer = setInterval(() => void this.flush(), this.options.flushIntervalMs);
    this.timer.unref();
  }

  /**
   * Counts one encryption under `version` of `key`, before it is made. A version that cannot rotate and
   * has reached its limit is refused: FAILED_PRECONDITION, Rejected.EncryptionLimit. A dry run
   * (`dryRun`) is checked against the limit and not counted.
   */
  async take(key: KeyRecord, version: KeyVersionRecord, dryRun = false): Promise<void> {
    if (key.origin === kmsResources.Origin.EXTERNAL) {
      const id = version.keyVersionId;
      let known = this.flushed.get(id);
      if (known === undefined) {
        const loading = this.deps!.store.encryptionsOf(id);
        this.flushed.set(id, loading);
        loading.then((n) => this.flushed.get(id) === loading && this.flushed.set(id, n), () => this.flushed.get(id) === loading && this.flushed.delete(id));
        known = loading;
      }
      const total = typeof known === "number" ? known : await known;
      // From here to record() nothing awaits: concurrent calls cannot all pass one remaining slot.
      const latest = this.flushed.get(id);
      const base = typeof latest === "number" ? latest : total;
      const unflushed = (this.pending.get(id)?.count ?? 0) + (this.writing.get(id)?.count ?? 0);
      if (base + unflushed >= this.options.maxWithoutRotation) {
        throw new KmsError(
          ErrorCode.EncryptionLimit,
          `key ${key.keyId}: key version ${id} has made ${this.options.maxWithoutRotation} encryptions, the most one AES-GCM key may make with random IVs (KMS_IMPORTED_KEY_MAX_ENCRYPTIONS); imported material cannot rotate by use: import new material into a new key and encrypt under it (Decrypt under this key still works)`,
        );
      }
    }
    if (!dryRun) this.record(key.keyId, version.keyVersionId);
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
    const s = this.deps;
    if (!s || this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    this.writing = batch;
    for (const [keyVersionId, { keyId, count }] of batch) {
      let total: number;
      try {
        total = await s.store.addEncryptions(keyVersionId, count);
      } catch (err) {
        // Put the count back so it is not lost; the next flush retries.
        const entry = this.pending.get(keyVersionId) ?? { keyId, count: 0 };
        entry.count += count;
        this.pending.set(keyVersionId, entry);
        batch.delete(keyVersionId);
        s.log.warn("usage count flush failed", { keyVersionId, ...describeError(err) });
        continue;
      }
      // Every replica's flushed counts: the next take() for a version that cannot rotate starts from here.
      if (this.flushed.has(keyVersionId)) this.flushed.set(keyVersionId, total);
      batch.delete(keyVersionId);
      if (total < this.options.threshold) continue;
      try {
        await s.onThreshold(keyId, keyVersionId);
      } catch (err) {
        // The count is written (putting it back would count it twice); the version's next flush, after
        // its next encryption, finds it still over the threshold and tries the rotation again.
        s.log.warn("rotation by use failed", { keyId, keyVersionId, ...describeError(err) });
      }
    }
  }
}
