import { DataKeyCache } from "./cache";
import type { DataKeySource } from "./data-keys";
import { FakeKms } from "./testing/fake-kms";

const KEY = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";

let kms: FakeKms;
let cache: DataKeyCache;
let source: DataKeySource;
function setup(options: ConstructorParameters<typeof DataKeyCache>[0]) {
  kms = new FakeKms();
  cache = new DataKeyCache(options);
  source = cache.wrap(kms);
}
afterEach(() => cache.clear());

it("serves one data key to many messages under the same key id and context", async () => {
  setup({ maxAgeMs: 60_000 });
  const a = await source.generateDataKey(KEY, { t: "1" });
  const b = await source.generateDataKey(KEY, { t: "1" });
  expect(a.ciphertextBlob.equals(b.ciphertextBlob)).toBe(true);
  expect(a.plaintext.equals(b.plaintext)).toBe(true);
  expect(a.plaintext).not.toBe(b.plaintext); // each receiver gets its own copy to zero
  expect(kms.generated).toBe(1);
  expect([cache.hits, cache.misses]).toEqual([1, 1]);
});

it("keeps separate entries per key id and per context", async () => {
  setup({ maxAgeMs: 60_000 });
  await source.generateDataKey(KEY, { t: "1" });
  await source.generateDataKey(KEY, { t: "2" });
  await source.generateDataKey("alias/other", { t: "1" });
  await source.generateDataKey(KEY, {});
  expect(kms.generated).toBe(4);
  expect(cache.size).toBe(4);
});

it("stops serving a key after maxMessages", async () => {
  setup({ maxAgeMs: 60_000, maxMessages: 2 });
  const blobs = [];
  for (let i = 0; i < 5; i++) blobs.push((await source.generateDataKey(KEY, {})).ciphertextBlob.toString("hex"));
  expect(kms.generated).toBe(3);
  expect(new Set(blobs).size).toBe(3);
  expect(blobs[0]).toBe(blobs[1]);
  expect(blobs[1]).not.toBe(blobs[2]);
});

it("stops serving a key once it has encrypted maxBytes", async () => {
  setup({ maxAgeMs: 60_000, maxBytes: 100 });
  const first = await source.generateDataKey(KEY, {});
  first.countBytes(60);
  expect((await source.generateDataKey(KEY, {})).ciphertextBlob).toEqual(first.ciphertextBlob);
  first.countBytes(40);
  expect((await source.generateDataKey(KEY, {})).ciphertextBlob).not.toEqual(first.ciphertextBlob);
  expect(kms.generated).toBe(2);
});

it("expires entries after maxAgeMs and zeroes them", async () => {
  jest.useFakeTimers();
  try {
    setup({ maxAgeMs: 1000 });
    await source.generateDataKey(KEY, {});
    // The original the cache holds is the first Buffer the fake handed out.
    const original = kms.handedOut[0]!;
    expect(original.equals(Buffer.alloc(32))).toBe(false);
    jest.advanceTimersByTime(999);
    expect(cache.size).toBe(1);
    jest.advanceTimersByTime(1);
    expect(cache.size).toBe(0);
    expect(original.equals(Buffer.alloc(32))).toBe(true);
    await source.generateDataKey(KEY, {});
    expect(kms.generated).toBe(2);
  } finally {
    jest.useRealTimers();
  }
});

it("evicts the least recently used entry beyond capacity, zeroing it", async () => {
  setup({ maxAgeMs: 60_000, capacity: 2 });
  await source.generateDataKey(KEY, { n: "1" });
  await source.generateDataKey(KEY, { n: "2" });
  await source.generateDataKey(KEY, { n: "1" }); // n=1 is now the most recent
  await source.generateDataKey(KEY, { n: "3" }); // evicts n=2
  expect(kms.handedOut[1]!.equals(Buffer.alloc(32))).toBe(true);
  expect(kms.handedOut[0]!.equals(Buffer.alloc(32))).toBe(false);
  await source.generateDataKey(KEY, { n: "1" });
  expect(kms.generated).toBe(3);
  await source.generateDataKey(KEY, { n: "2" });
  expect(kms.generated).toBe(4);
});

it("clear() zeroes every entry", async () => {
  setup({ maxAgeMs: 60_000 });
  await source.generateDataKey(KEY, { n: "1" });
  await source.generateDataKey(KEY, { n: "2" });
  cache.clear();
  expect(cache.size).toBe(0);
  for (const key of kms.handedOut) expect(key.equals(Buffer.alloc(32))).toBe(true);
});

it("passes decryption through to the KMS", async () => {
  setup({ maxAgeMs: 60_000 });
  const lease = await source.generateDataKey(KEY, { a: "b" });
  const key = await source.decryptDataKey(lease.ciphertextBlob, { a: "b" });
  expect(key.equals(lease.plaintext)).toBe(true);
  expect(kms.decrypted).toBe(1);
});

it("refuses a non-positive maxAgeMs", () => {
  expect(() => new DataKeyCache({ maxAgeMs: 0 })).toThrow("maxAgeMs must be positive");
  cache = new DataKeyCache({ maxAgeMs: 1 });
});
