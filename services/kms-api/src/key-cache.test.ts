import type { AliasStore, GrantRecord, GrantStore, KeyRecord, KeyStore, KeyVersionRecord } from "@kms/db";
import { KeyCache } from "./key-cache";

function fakes() {
  const calls = { getKey: 0, getVersion: 0, alias: 0 };
  const keys = new Map<string, KeyRecord>([["k1", { keyId: "k1" } as KeyRecord]]);
  const store = {
    getKey: async (id: string) => (calls.getKey++, keys.get(id)),
    getVersion: async (id: string) => (calls.getVersion++, id === "v1" ? ({ keyVersionId: "v1", keyId: "k1" } as KeyVersionRecord) : undefined),
  } as unknown as KeyStore;
  const aliases = { get: async (name: string) => (calls.alias++, name === "alias/a" ? { keyId: "k1" } : undefined) } as unknown as AliasStore;
  return { calls, keys, store, aliases };
}

describe("KeyCache", () => {
  it("reads a hot key from the store once per TTL", async () => {
    let now = 0;
    const f = fakes();
    const cache = new KeyCache(f.store, f.aliases, { keyTtlMs: 1000, now: () => now });
    await Promise.all([cache.getKey("k1"), cache.getKey("k1"), cache.getKey("k1")]);
    expect(f.calls.getKey).toBe(1);
    now = 999;
    await cache.getKey("k1");
    expect(f.calls.getKey).toBe(1);
    now = 1000;
    await cache.getKey("k1");
    expect(f.calls.getKey).toBe(2);
  });

  it("does not remember a missing key (another replica may create it)", async () => {
    const f = fakes();
    const cache = new KeyCache(f.store, f.aliases);
    expect(await cache.getKey("k2")).toBeUndefined();
    f.keys.set("k2", { keyId: "k2" } as KeyRecord);
    expect((await cache.getKey("k2"))?.keyId).toBe("k2");
  });

  it("drops a key, an alias, or everything on invalidation", async () => {
    const f = fakes();
    const cache = new KeyCache(f.store, f.aliases);
    await cache.getKey("k1");
    await cache.aliasTarget("alias/a");
    await cache.getVersion("v1");
    cache.invalidateKey("k1");
    cache.invalidateAlias("alias/a");
    await cache.getKey("k1");
    await cache.aliasTarget("alias/a");
    await cache.getVersion("v1");
    expect(f.calls).toEqual({ getKey: 2, getVersion: 1, alias: 2 });
    cache.clear();
    await cache.getVersion("v1");
    expect(f.calls.getVersion).toBe(2);
  });

  it("caches a key's grants per grantee for the key's TTL and drops them with the key", async () => {
    let now = 0;
    const f = fakes();
    const reads: string[] = [];
    const grants = { forGrantee: async (keyId: string, grantee: string) => (reads.push(`${keyId}/${grantee}`), [] as GrantRecord[]) } as unknown as GrantStore;
    const cache = new KeyCache(f.store, f.aliases, { keyTtlMs: 1000, now: () => now }, grants);
    await Promise.all([cache.grantsTo("k1", "bob"), cache.grantsTo("k1", "bob"), cache.grantsTo("k1", "carol")]);
    expect(reads).toEqual(["k1/bob", "k1/carol"]);
    cache.invalidateKey("k1"); // a grant change NOTIFYs changed:<key id>
    await cache.grantsTo("k1", "bob");
    now = 1000;
    await cache.grantsTo("k1", "bob");
    expect(reads).toEqual(["k1/bob", "k1/carol", "k1/bob", "k1/bob"]);
    const uncached = new KeyCache(f.store, f.aliases, { keyTtlMs: 0 }, grants);
    await uncached.grantsTo("k1", "bob");
    await uncached.grantsTo("k1", "bob");
    expect(reads.length).toBe(6);
  });
});
