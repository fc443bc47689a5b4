// Key metadata for the hot path without a database read per request. Entries live at most `keyTtlMs`
// (KMS_METADATA_CACHE_TTL_MS, 1 s by default, so a replica honours another replica's change within that
// even if a notification were lost; 0: no caching) and are dropped as soon as a NOTIFY says the key or
// alias changed. An entry's lifetime counts from the moment its query was sent, so a value read before a
// change committed is never served longer than the TTL after the commit.
// A key's grants to one grantee are cached with the key, for as long, and dropped with it (a grant change
// notifies `changed:<key id>`).
// Versions change only when a root rotation re-wraps them (their NOTIFY drops them here; a lost one is
// covered by KMS_ROOT_RETIRE_DELAY_MS exceeding the version TTL), so they are cached longer; a destroyed
// key's versions become unreachable because every use of a version also looks its key up.
import { withoutDeadline } from "@kms/db";
import type { AliasStore, GrantRecord, GrantStore, KeyRecord, KeyStore, KeyVersionRecord } from "@kms/db";

interface Entry<V> {
  value: V;
  expires: number;
}

class TtlMap<V> {
  private readonly map = new Map<string, Entry<V>>();
  constructor(
    private readonly ttlMs: number,
    private readonly max: number,
    private readonly now: () => number,
  ) {}

  get(key: string): V | undefined {
    const e = this.map.get(key);
    if (!e) return undefined;
    if (e.expires <= this.now()) {
      this.map.delete(key);
      return undefined;
    }
    return e.value;
  }

  set(key: string, value: V): void {
    if (this.map.size >= this.max) {
      const oldest = this.map.keys().next().value;
      if (oldest !== undefined) this.map.delete(oldest);
    }
    this.map.set(key, { value, expires: this.now() + this.ttlMs });
  }

  delete(key: string): void {
    this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }
}

/** Grantees cached per key: beyond this, that key's entries start again (one caller cannot evict others' keys). */
const MAX_GRANTEES_PER_KEY = 1000;

export interface KeyCacheOptions {
  keyTtlMs?: number;
  versionTtlMs?: number;
  maxEntries?: number;
  now?: () => number;
}

export class KeyCache {
  private readonly keys: TtlMap<Promise<KeyRecord | undefined>>;
  private readonly versions: TtlMap<Promise<KeyVersionRecord | undefined>>;
  private readonly aliases: TtlMap<Promise<string | undefined>>;
  /** Key id → grantee → the key's grants to that grantee. */
  private readonly grants: TtlMap<Map<string, Promise<GrantRecord[]>>>;
  hits = 0;
  misses = 0;

  constructor(
    private readonly store: KeyStore,
    private readonly aliasStore: AliasStore,
    o: KeyCacheOptions = {},
    private readonly grantStore?: GrantStore,
  ) {
    const now = o.now ?? Date.now;
    const max = o.maxEntries ?? 20_000;
    this.keys = new TtlMap(o.keyTtlMs ?? 1000, max, now);
    this.aliases = new TtlMap(o.keyTtlMs ?? 1000, max, now);
    this.versions = new TtlMap(o.versionTtlMs ?? 60_000, max, now);
    this.grants = new TtlMap(o.keyTtlMs ?? 1000, max, now);
    this.keyTtlMs = o.keyTtlMs ?? 1000;
  }

  private readonly keyTtlMs: number;

  /** The key's grants to `grantee` (none without a grant store). */
  grantsTo(keyId: string, grantee: string): Promise<GrantRecord[]> {
    const store = this.grantStore;
    if (!store) return Promise.resolve([]);
    if (this.keyTtlMs <= 0) return withoutDeadline(() => store.forGrantee(keyId, grantee));
    let byGrantee = this.grants.get(keyId);
    if (!byGrantee) {
      byGrantee = new Map();
      this.grants.set(keyId, byGrantee);
    }
    const cached = byGrantee.get(grantee);
    if (cached) return cached;
    if (byGrantee.size >= MAX_GRANTEES_PER_KEY) byGrantee.clear();
    const entry = byGrantee;
    const loading = withoutDeadline(() => store.forGrantee(keyId, grantee)).catch((err: unknown) => {
      entry.delete(grantee);
      throw err;
    });
    byGrantee.set(grantee, loading);
    return loading;
  }

  getKey(keyId: string): Promise<KeyRecord | undefined> {
    return this.through(this.keys, keyId, () => this.store.getKey(keyId));
  }

  getVersion(keyVersionId: string): Promise<KeyVersionRecord | undefined> {
    return this.through(this.versions, keyVersionId, () => this.store.getVersion(keyVersionId));
  }

  aliasTarget(aliasName: string): Promise<string | undefined> {
    return this.through(this.aliases, aliasName, async () => (await this.aliasStore.get(aliasName))?.keyId);
  }

  invalidateKey(keyId: string): void {
    this.keys.delete(keyId);
    this.grants.delete(keyId);
  }

  invalidateVersion(keyVersionId: string): void {
    this.versions.delete(keyVersionId);
  }

  invalidateAlias(aliasName: string): void {
    this.aliases.delete(aliasName);
  }

  /** After a lost notification connection: nothing cached can be trusted. */
  clear(): void {
    this.keys.clear();
    this.aliases.clear();
    this.versions.clear();
    this.grants.clear();
  }

  /**
   * Concurrent misses share one query (the promise is cached). Misses are not remembered: a key created
   * on another replica must be found at once.
   */
  private through<V>(map: TtlMap<Promise<V | undefined>>, id: string, load: () => Promise<V | undefined>) {
    const cached = map.get(id);
    if (cached) {
      this.hits++;
      return cached;
    }
    this.misses++;
    // Shared by every caller that misses meanwhile: no one caller's deadline may cancel it.
    const loading = withoutDeadline(load).then(
      (v) => {
        if (v === undefined) map.delete(id);
        return v;
      },
      (err: unknown) => {
        map.delete(id);
        throw err;
      },
    );
    map.set(id, loading);
    return loading;
  }
}
