// Least-recently-used map of unwrapped keys, so a hot key is unwrapped once. The cache never frees anything
// itself: every method that drops entries returns them, and the owner (who knows whether a value is an HSM
// object or a KeyObject, and has a session at hand) releases them. A backend's engines share one cache
// (KeyCache), so KMS_KEY_CACHE_SIZE bounds them together; one engine may push out another's entry.
import type { kmsResources } from "@kms/proto";

/**
 * The cache slot of an unwrapped key: its version id, spec and protection level. The backends compare the
 * wrapped bytes on a hit as well, so an entry is only ever reused for the exact (version, spec, level,
 * material) it was unwrapped (and, for format 2, authenticated) for: never for the same version id
 * presented as another level or spec, or with other wrapped bytes.
 */
export function unwrappedKeySlot(key: {
  keyVersionId: string;
  keySpec: kmsResources.KeySpec;
  protectionLevel: kmsResources.ProtectionLevel;
}): string {
  return `${key.keySpec}/${key.protectionLevel}/${key.keyVersionId}`;
}

/** An engine's unwrapped key, as the shared cache holds it. */
export interface CachedKey {
  /** The engine that made it: only that one uses or forgets it. */
  readonly engine: object;
  readonly keyVersionId: string;
  /** The wrapped bytes it was unwrapped from (compared on every hit). */
  readonly wrapped: Buffer;
  /** It left the cache for good (pushed out or forgotten): its engine frees it once no call uses it. */
  evicted(): void;
}

export type KeyCache = LruCache<CachedKey>;

export class LruCache<V> {
  // A Map iterates in insertion order: re-inserting on access keeps the least recently used first.
  private readonly entries = new Map<string, V>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`cache capacity must be >= 1, got ${capacity}`);
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string): V | undefined {
    const value = this.entries.get(key);
    if (value !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, value);
    }
    return value;
  }

  /** Inserts or replaces `key`; returns the values pushed out (a replaced value, then evicted ones). */
  set(key: string, value: V): V[] {
    const dropped: V[] = [];
    const previous = this.entries.get(key);
    if (previous !== undefined) {
      this.entries.delete(key);
      if (previous !== value) dropped.push(previous);
    }
    this.entries.set(key, value);
    for (const [oldest, oldValue] of this.entries) {
      if (this.entries.size <= this.capacity) break;
      this.entries.delete(oldest);
      dropped.push(oldValue);
    }
    return dropped;
  }

  delete(key: string): V | undefined {
    const value = this.entries.get(key);
    this.entries.delete(key);
    return value;
  }

  deleteWhere(predicate: (value: V, key: string) => boolean): V[] {
    const dropped: V[] = [];
    for (const [key, value] of this.entries) {
      if (predicate(value, key)) {
        this.entries.delete(key);
        dropped.push(value);
      }
    }
    return dropped;
  }

  clear(): V[] {
    const dropped = [...this.entries.values()];
    this.entries.clear();
    return dropped;
  }

  /** Keys from least to most recently used. */
  keys(): string[] {
    return [...this.entries.keys()];
  }
}
