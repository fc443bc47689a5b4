// The worker is never called inside a transaction or under a row lock (issue 16 #2): CreateKey,
// CreateKeyVersion, GetParametersForImport, ImportKeyMaterial, rotation by time and rotation by use make
// or unwrap material first and only then commit. Real Postgres (a scratch database), an in-memory worker
// that looks at Postgres on every call. Steps are counted, never timed.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { connect, createScratchDatabase, holdKeyRowLock, migrate } from "@kms/db";
import type { ScratchDatabase, Sql } from "@kms/db";
import { kms, kmsResources } from "@kms/proto";
import type { CallContext, Services } from "./context";
import { createKey } from "./handlers/create-key";
import { getParametersForImport } from "./handlers/get-parameters-for-import";
import { importKeyMaterial } from "./handlers/import-key-material";
import { createKeyVersion } from "./handlers/versions";
import { rotateDueKeys } from "./jobs/rotation";
import { createLogger } from "@kms/telemetry";
import { createServices } from "./services";
import { newCallContext } from "./pipeline/pipeline";

const { KeySpec, Origin, WrappingAlgorithm, WrappingKeySpec } = kmsResources;
const DAY_MS = 86_400_000;
jest.setTimeout(30_000); // a wrong change fails by its bounded polls below, not by the test timeout

let db: ScratchDatabase;
let sql: Sql; // kms-api's pool
let observer: Sql; // what the fake worker looks through
let admin: Sql; // the DBA, who holds row locks
let s: Services;
const clock = { now: new Date() };
const wrappingSpki = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ type: "spki", format: "der" });

/** Per worker call: its name and how many other backends had a transaction open at that moment. */
const calls: { name: string; openTransactions: number }[] = [];
let onCall: (name: string) => void = () => {};

async function openTransactions(): Promise<number> {
  const [row] = await observer<{ n: number }[]>`
    SELECT count(*)::int AS n FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL`;
  return row!.n;
}

async function seen(name: string): Promise<void> {
  calls.push({ name, openTransactions: await openTransactions() });
  onCall(name);
}

const fakeWorker = {
  async getStatus() {
    return { hsmKeysSupported: false, hsmUnsupportedKeySpecs: [], rootKeyId: "root-1", legacyRootKeyId: "" };
  },
  async generateKeyMaterial(req: { keySpec?: number; keyVersionId?: string }) {
    await seen("generateKeyMaterial");
    const rsa = req.keySpec === KeySpec.RSA_2048 || req.keySpec === KeySpec.RSA_3072 || req.keySpec === KeySpec.RSA_4096;
    return { wrappedMaterial: randomBytes(40), rootKeyId: "root-1", publicKey: rsa ? new Uint8Array(wrappingSpki) : new Uint8Array() };
  },
  async importKeyMaterial() {
    await seen("importKeyMaterial");
    return { wrappedMaterial: randomBytes(40), rootKeyId: "root-1", publicKey: new Uint8Array(), fingerprint: new Uint8Array(32).fill(7), legacyFingerprint: new Uint8Array() };
  },
  close() {},
};

beforeAll(async () => {
  db = await createScratchDatabase("kms_unit_worker_tx");
  sql = connect(db.url);
  observer = connect(db.url, { max: 1 });
  admin = connect(db.url, { max: 1 });
  await migrate(sql);
  s = await createServices({
    sql,
    workerSocket: "/nonexistent/hsm-worker.sock",
    workerDeadlineMs: 1000,
    rotateAfterEncryptions: 2 ** 30,
    log: createLogger("error", "test"),
    access: { admins: ["dev"], creators: ["*"], auditors: [], aliasPrefixes: {} },
    clock: () => clock.now,
    usageFlushIntervalMs: 60_000,
    metadataCacheTtlMs: 0,
  });
  s.worker.close();
  s.worker = fakeWorker as unknown as Services["worker"];
});

afterAll(async () => {
  await s.usage.stop();
  await s.audit.drain();
  await Promise.all([sql.end(), observer.end(), admin.end()]);
  await db.drop();
});

beforeEach(() => {
  calls.length = 0;
  onCall = () => {};
});

function ctx(operation: string): CallContext {
  return { ...newCallContext(`req-${operation}`, operation, undefined), principal: "dev" };
}

async function newKey(init: MessageInitShape<typeof kms.CreateKeyRequestSchema> = {}): Promise<kmsResources.KeyMetadata> {
  return (await createKey(create(kms.CreateKeyRequestSchema, init), ctx("CreateKey"), s)).keyMetadata as kmsResources.KeyMetadata;
}

async function importToken(keyId: string): Promise<string> {
  const req = create(kms.GetParametersForImportRequestSchema, {
    keyId,
    wrappingAlgorithm: WrappingAlgorithm.RSAES_OAEP_SHA_256,
    wrappingKeySpec: WrappingKeySpec.RSA_2048,
  });
  return (await getParametersForImport(req, ctx("GetParametersForImport"), s)).importToken as string;
}

const importInto = (keyId: string, token: string) =>
  importKeyMaterial(create(kms.ImportKeyMaterialRequestSchema, { keyId, importToken: token, encryptedKeyMaterial: randomBytes(64) }), ctx("ImportKeyMaterial"), s);

const versionCount = async (keyId: string) => (await admin<{ n: number }[]>`SELECT count(*)::int AS n FROM key_versions WHERE key_id = ${keyId}`)[0]!.n;

/** Lock waits among this database's backends now. */
async function lockWaiters(): Promise<number> {
  const [row] = await observer<{ n: number }[]>`
    SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`;
  return row!.n;
}

/** Polls (counted, not timed) until `done` holds; returns whether it did. */
async function pollUntil(done: () => boolean | Promise<boolean>): Promise<boolean> {
  for (let polls = 0; polls < 200; polls++) {
    if (await done()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

/**
 * Runs `change` while the DBA holds the key's row lock: the worker call named `workerCall` must happen
 * anyway, then the change waits for the lock (its short commit only), and completes once it is released.
 * A change that asked the worker only under the lock would wait without calling it: the first check fails.
 */
async function underForeignLock<T>(keyId: string, workerCall: string, change: () => Promise<T>): Promise<T> {
  const unlock = await holdKeyRowLock(admin, keyId); // as the DBA
  let called = false;
  let settled = false;
  let result!: Promise<T>;
  try {
    onCall = (name) => (called ||= name === workerCall);
    result = change().finally(() => (settled = true));
    result.catch(() => {});
    expect(await pollUntil(() => called)).toBe(true);
    expect(await pollUntil(async () => (await lockWaiters()) > 0)).toBe(true);
    expect(settled).toBe(false);
  } finally {
    await unlock();
  }
  return result;
}

describe("no transaction is open while the worker works", () => {
  it("CreateKey and CreateKeyVersion", async () => {
    const key = await newKey();
    await createKeyVersion(create(kms.CreateKeyVersionRequestSchema, { keyId: key.keyId }), ctx("CreateKeyVersion"), s);
    expect(calls).toEqual([
      { name: "generateKeyMaterial", openTransactions: 0 },
      { name: "generateKeyMaterial", openTransactions: 0 },
    ]);
    expect(await versionCount(key.keyId)).toBe(2);
  });

  it("GetParametersForImport and ImportKeyMaterial", async () => {
    const key = await newKey({ origin: Origin.EXTERNAL });
    const imported = await importInto(key.keyId, await importToken(key.keyId));
    expect(imported.keyMetadata?.keyState).toBe(kmsResources.KeyState.ENABLED);
    expect(calls).toEqual([
      { name: "generateKeyMaterial", openTransactions: 0 },
      { name: "importKeyMaterial", openTransactions: 0 },
    ]);
  });

  it("rotation by time and rotation by use", async () => {
    // A year's interval: the later tests' passes, a few days on, find only their own keys due.
    const key = await newKey({ enableAutomaticRotation: true, rotationInterval: { seconds: 365n * 86400n, nanos: 0 } });
    clock.now = new Date(clock.now.getTime() + 366 * DAY_MS);
    expect(await rotateDueKeys(s)).toBe(1);
    const rotated = (await s.store.getKey(key.keyId))!;
    await admin`UPDATE key_versions SET encryptions = ${2 ** 30} WHERE key_version_id = ${rotated.primaryKeyVersionId}`;
    s.usage.record(key.keyId, rotated.primaryKeyVersionId!);
    await s.usage.flush();
    expect(calls).toEqual([
      { name: "generateKeyMaterial", openTransactions: 0 },
      { name: "generateKeyMaterial", openTransactions: 0 },
      { name: "generateKeyMaterial", openTransactions: 0 },
    ]);
    expect(await versionCount(key.keyId)).toBe(3);
  });
});

describe("with the key's row locked by someone else, material is still made and only the commit waits", () => {
  it("CreateKeyVersion", async () => {
    const key = await newKey();
    const created = await underForeignLock(key.keyId, "generateKeyMaterial", () =>
      createKeyVersion(create(kms.CreateKeyVersionRequestSchema, { keyId: key.keyId }), ctx("CreateKeyVersion"), s),
    );
    expect(created.keyVersion?.keyId).toBe(key.keyId);
    expect(await versionCount(key.keyId)).toBe(2);
  });

  it("ImportKeyMaterial", async () => {
    const key = await newKey({ origin: Origin.EXTERNAL });
    const token = await importToken(key.keyId);
    const imported = await underForeignLock(key.keyId, "importKeyMaterial", () => importInto(key.keyId, token));
    expect(imported.keyMetadata?.keyState).toBe(kmsResources.KeyState.ENABLED);
    expect(await versionCount(key.keyId)).toBe(1);
  });

  it("rotation by time", async () => {
    const key = await newKey({ enableAutomaticRotation: true, rotationInterval: { seconds: 7n * 86400n, nanos: 0 } });
    clock.now = new Date(clock.now.getTime() + 8 * DAY_MS);
    expect(await underForeignLock(key.keyId, "generateKeyMaterial", () => rotateDueKeys(s))).toBe(1);
    expect(await versionCount(key.keyId)).toBe(2);
  });
});

describe("material made for a key that moved on meanwhile is not inserted", () => {
  it("a rotation by use whose primary was replaced while the worker worked", async () => {
    const key = await newKey();
    const before = (await s.store.getKey(key.keyId))!.primaryKeyVersionId!;
    await admin`UPDATE key_versions SET encryptions = ${2 ** 30} WHERE key_version_id = ${before}`;
    // While the worker makes the rotation's material, a caller adds a version: the primary moves.
    const generate = fakeWorker.generateKeyMaterial;
    let generated = 0;
    fakeWorker.generateKeyMaterial = async (req) => {
      if (++generated > 1) return generate(req); // the caller's version
      void createKeyVersion(create(kms.CreateKeyVersionRequestSchema, { keyId: key.keyId }), ctx("CreateKeyVersion"), s);
      const material = await generate(req);
      // The rotation's material is handed back only once the caller's version has committed.
      await pollUntil(async () => (await versionCount(key.keyId)) >= 2);
      return material;
    };
    try {
      s.usage.record(key.keyId, before);
      await s.usage.flush();
    } finally {
      fakeWorker.generateKeyMaterial = generate;
    }
    // Two made (the rotation's and the caller's), one inserted: the caller's. No rotation audit row.
    expect(generated).toBe(2);
    expect(await versionCount(key.keyId)).toBe(2);
    const rows = await admin`SELECT 1 FROM audit_events WHERE key_id = ${key.keyId} AND operation = 'RotationByUse'`;
    expect(rows.length).toBe(0);
  });
});
