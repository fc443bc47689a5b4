import { kmsResources } from "@kms/proto";
import { LruCache, unwrappedKeySlot } from "./handle-cache";

const { KeySpec, ProtectionLevel } = kmsResources;

describe("unwrappedKeySlot", () => {
  it("differs for another version id, spec or protection level of the same version", () => {
    const key = { keyVersionId: "kv-1", keySpec: KeySpec.AES_256, protectionLevel: ProtectionLevel.HSM };
    const slots = [
      key,
      { ...key, keyVersionId: "kv-2" },
      { ...key, keySpec: KeySpec.HMAC_SHA256 },
      { ...key, protectionLevel: ProtectionLevel.SOFTWARE },
    ].map(unwrappedKeySlot);
    expect(new Set(slots).size).toBe(4);
    expect(unwrappedKeySlot({ ...key })).toBe(slots[0]);
  });
});

describe("LruCache", () => {
  it("evicts the least recently used entry and returns it", () => {
    const cache = new LruCache<string>(2);
    expect(cache.set("a", "A")).toEqual([]);
    expect(cache.set("b", "B")).toEqual([]);
    expect(cache.get("a")).toBe("A"); // a is now the most recent
    expect(cache.set("c", "C")).toEqual(["B"]);
    expect(cache.keys()).toEqual(["a", "c"]);
    expect(cache.get("b")).toBeUndefined();
  });

  it("returns a replaced value and drops by predicate and clear", () => {
    const cache = new LruCache<number>(3);
    cache.set("x", 1);
    expect(cache.set("x", 2)).toEqual([1]);
    cache.set("y", 3);
    cache.set("z", 4);
    expect(cache.deleteWhere((v) => v % 2 === 0)).toEqual([2, 4]);
    expect(cache.keys()).toEqual(["y"]);
    expect(cache.delete("y")).toBe(3);
    expect(cache.delete("y")).toBeUndefined();
    cache.set("w", 5);
    expect(cache.clear()).toEqual([5]);
    expect(cache.size).toBe(0);
  });

  it("refuses a capacity below 1", () => {
    expect(() => new LruCache(0)).toThrow(RangeError);
  });
});
