// The units of work (unit-of-work.ts, locked-rows.ts) and the reads that precede them, against the real
// Postgres at KMS_TEST_DATABASE_URL (default: local server), in a scratch database.
import { randomUUID } from "node:crypto";
import { AliasStore } from "./alias-store";
import { AuditWriter } from "./audit-writer";
import type { AuditEvent } from "./audit-writer";
import { connect } from "./connect";
import type { Sql } from "./connect";
import { KeyStore } from "./key-store";
import { newKey } from "./test-keys";
import type { KeyVersionRecord, NewKey } from "./key-store";
import { migrate } from "./migrate";
import { keysWithoutPrimaryVersion, versionsUnderOtherRoots } from "./reconcile-queries";
import { holdKeyRowLock } from "./row-lock-holder";
import { createScratchDatabase } from "./scratch";
import type { ScratchDatabase } from "./scratch";
import { Transactions } from "./unit-of-work";

let db: ScratchDatabase;
let sql: Sql;
let admin: Sql;
let transactions: Transactions;
let store: KeyStore;

beforeAll(async () => {
  db = await createScratchDatabase("kms_unit_work");
  sql = connect(db.url);
  admin = connect(db.url, { max: 1 });
  await migrate(sql);
  transactions = new Transactions(sql, new AuditWriter(sql));
  store = new KeyStore(sql);
});

afterAll(async () => {
  await Promise.all([sql.end(), admin.end()]);
  await db.drop();
});

const DAY_MS = 86_400_000;


const versionOf = (keyId: string, rootKeyId = "root-1"): KeyVersionRecord => ({
  keyVersionId: randomUUID(),
  keyId,
  creationTime: new Date(),
  wrappedMaterial: Buffer.from("wrapped"),
  rootKeyId,
  publicKey: null,
});

/** A key with one (primary) version, inserted through a unit of work. */
async function keyWithVersion(overrides: Partial<NewKey> = {}, rootKeyId = "root-1") {
  const key = newKey(overrides);
  const version = versionOf(key.keyId, rootKeyId);
  await transactions.run((work) => work.insertKey(key, version));
  return { key, version };
}

const auditEvent = (requestId: string, keyId = ""): AuditEvent => ({
  time: new Date(),
  requestId,
  principal: "dev",
  operation: "Test",
  keyId,
  keyVersionId: "",
  resultCode: "OK",
  errorCode: "",
  encryptionContext: {},
});

const versionIds = async (keyId: string) =>
  (await admin<{ keyVersionId: string }[]>`SELECT key_version_id FROM key_versions WHERE key_id = ${keyId} ORDER BY creation_time`).map((r) => r.keyVersionId);
const auditRows = async (requestId: string) => (await admin`SELECT 1 FROM audit_events WHERE request_id = ${requestId}`).length;

describe("Transactions.run", () => {
  it("commits a change with its audit row, or neither", async () => {
    const committed = newKey();
    await transactions.run(async (work) => {
      await work.insertKey(committed, undefined);
      await work.appendAudit(auditEvent("work-committed", committed.keyId));
    });
    const rolledBack = newKey();
    const failed = transactions.run(async (work) => {
      await work.insertKey(rolledBack, undefined);
      await work.appendAudit(auditEvent("work-rolled-back", rolledBack.keyId));
      throw new Error("the change fails after its row");
    });
    await expect(failed).rejects.toThrow("the change fails after its row");
    expect([await store.getKey(committed.keyId) !== undefined, await auditRows("work-committed")]).toEqual([true, 1]);
    expect([await store.getKey(rolledBack.keyId), await auditRows("work-rolled-back")]).toEqual([undefined, 0]);
  });
});

describe("UnitOfWork.withLockedKey", () => {
  it("hands the locked row to the change and returns undefined for a key that does not exist", async () => {
    const { key } = await keyWithVersion({ tags: { a: "1" } });
    const updated = await transactions.run((work) =>
      work.withLockedKey(key.keyId, async (locked) => {
        expect(locked.record.tags).toEqual({ a: "1" });
        const tags = await locked.changeTags({ b: "2" }, ["a"]);
        expect(tags).toEqual({ b: "2" });
        return locked.update({ description: "changed" });
      }),
    );
    expect([updated?.description, updated?.tags]).toEqual(["changed", { b: "2" }]);
    let ran = false;
    expect(await transactions.run((work) => work.withLockedKey(randomUUID(), () => (ran = true)))).toBeUndefined();
    expect(ran).toBe(false);
  });

  it("waits while another session holds the row, and runs once it is released", async () => {
    const { key } = await keyWithVersion();
    const unlock = await holdKeyRowLock(admin, key.keyId);
    let entered = false;
    const change = transactions.run((work) => work.withLockedKey(key.keyId, (locked) => ((entered = true), locked.record.description)));
    for (let i = 0; i < 5; i++) await sql`SELECT 1`; // every chance to get ahead: it cannot
    expect(entered).toBe(false);
    await unlock();
    expect(await change).toBe("d");
  });

  it("refuses a version of another key", async () => {
    const { key } = await keyWithVersion();
    const other = versionOf(randomUUID());
    await expect(transactions.run((work) => work.withLockedKey(key.keyId, (locked) => locked.addPrimaryVersion(other)))).rejects.toThrow(
      `version ${other.keyVersionId} is not of key ${key.keyId}`,
    );
  });
});

describe("UnitOfWork.setPrimaryIf (compare-and-set of the primary version)", () => {
  it("makes the version the primary, with the patch of the locked row, when the row is as expected", async () => {
    const { key, version } = await keyWithVersion({ rotationIntervalSeconds: 7 * 86400 });
    const next = versionOf(key.keyId);
    const updated = await transactions.run((work) =>
      work.setPrimaryIf(key.keyId, { primaryKeyVersionId: version.keyVersionId }, next, (locked) => ({
        lastRotationTime: next.creationTime,
        nextRotationTime: new Date(next.creationTime.getTime() + (locked.rotationIntervalSeconds ?? 0) * 1000),
      })),
    );
    expect(updated?.primaryKeyVersionId).toBe(next.keyVersionId);
    expect(updated?.nextRotationTime?.getTime()).toBe(next.creationTime.getTime() + 7 * DAY_MS);
    expect(await versionIds(key.keyId)).toEqual([version.keyVersionId, next.keyVersionId]);
  });

  it("inserts nothing when the primary moved or the condition no longer holds", async () => {
    const { key, version } = await keyWithVersion();
    const moved = await transactions.run((work) => work.setPrimaryIf(key.keyId, { primaryKeyVersionId: randomUUID() }, versionOf(key.keyId)));
    const notHeld = await transactions.run((work) =>
      work.setPrimaryIf(key.keyId, { primaryKeyVersionId: version.keyVersionId, holds: (k) => k.keyState === 2 }, versionOf(key.keyId)),
    );
    const gone = await transactions.run((work) => work.setPrimaryIf(randomUUID(), { primaryKeyVersionId: null }, versionOf(key.keyId)));
    expect([moved, notHeld, gone]).toEqual([undefined, undefined, undefined]);
    expect(await versionIds(key.keyId)).toEqual([version.keyVersionId]);
    expect((await store.getKey(key.keyId))?.primaryKeyVersionId).toBe(version.keyVersionId);
  });

  it("lets one of two racing rotations of the same primary win", async () => {
    const { key, version } = await keyWithVersion();
    const rotate = () => transactions.run((work) => work.setPrimaryIf(key.keyId, { primaryKeyVersionId: version.keyVersionId }, versionOf(key.keyId)));
    const results = await Promise.all([rotate(), rotate()]);
    expect(results.filter((r) => r !== undefined)).toHaveLength(1);
    expect(await versionIds(key.keyId)).toHaveLength(2);
  });
});

describe("import through units of work", () => {
  const token = (keyId: string, expireTime: Date) => ({
    tokenId: randomUUID(),
    tokenHash: Buffer.from(randomUUID()),
    keyId,
    wrappingAlgorithm: 1,
    wrappingKeySpec: 1,
    protectionLevel: 2,
    wrappedPrivateKey: Buffer.from("wrapped private key"),
    rootKeyId: "root-1",
    creationTime: new Date(),
    expireTime,
    usedAt: null,
  });

  it("reads a token and imported material unlocked, then uses them under the key's lock", async () => {
    const key = newKey({ origin: 2, keyState: 4 });
    const issued = token(key.keyId, new Date(Date.now() + DAY_MS));
    await transactions.run(async (work) => {
      await work.insertKey(key, undefined);
      await work.insertImportToken(issued);
    });
    expect((await store.importToken(issued.tokenHash))?.tokenId).toBe(issued.tokenId);
    expect(await store.importedMaterial(key.keyId)).toBeUndefined();
    const version = versionOf(key.keyId);
    const now = new Date();
    await transactions.run((work) =>
      work.withLockedKey(key.keyId, async (locked) => {
        const held = await locked.lockImportToken(issued.tokenHash);
        expect(await locked.lockImportToken(Buffer.from("no such token"))).toBeUndefined();
        await held!.markUsed(now);
        await locked.recordImportedMaterial({ keyVersionId: version.keyVersionId, versionCreationTime: now, fingerprint: Buffer.from("fp") });
        await locked.addPrimaryVersion(version);
        return locked.update({ keyState: 1 });
      }),
    );
    const used = await store.importToken(issued.tokenHash);
    expect([used?.usedAt?.getTime(), used?.wrappedPrivateKey]).toEqual([now.getTime(), null]);
    expect((await store.importedMaterial(key.keyId))?.keyVersionId).toBe(version.keyVersionId);

    await transactions.run((work) =>
      work.withLockedKey(key.keyId, async (locked) => {
        await locked.deleteImportedVersion(version.keyVersionId);
        return locked.update({ keyState: 4, primaryKeyVersionId: null });
      }),
    );
    expect(await versionIds(key.keyId)).toEqual([]);
    expect((await store.importedMaterial(key.keyId))?.fingerprint).toEqual(Buffer.from("fp")); // the id and fingerprint stay
  });

  it("finds keys whose material expired (skipping rows another session holds) and deletes expired tokens", async () => {
    const past = new Date(Date.now() - DAY_MS);
    const [mine, held] = [await keyWithVersion({ origin: 2 }), await keyWithVersion({ origin: 2 })];
    await admin`UPDATE keys SET material_expire_time = ${past} WHERE key_id IN ${admin([mine.key.keyId, held.key.keyId])}`;
    const stale = token(mine.key.keyId, new Date(Date.now() - 30 * DAY_MS));
    await transactions.run((work) => work.insertImportToken(stale));
    const unlock = await holdKeyRowLock(admin, held.key.keyId);
    try {
      const { due, deleted } = await transactions.run(async (work) => {
        const keys = await work.lockDueForMaterialExpiry(new Date(), 100);
        return { due: keys.map((k) => k.record.keyId), deleted: await work.deleteExpiredImportTokens(new Date(Date.now() - 7 * DAY_MS)) };
      });
      expect(due).toContain(mine.key.keyId);
      expect(due).not.toContain(held.key.keyId);
      expect(deleted).toBeGreaterThanOrEqual(1);
      expect(await store.importToken(stale.tokenHash)).toBeUndefined();
    } finally {
      await unlock();
    }
  });
});

describe("jobs' units of work", () => {
  it("lists keys due for rotation without locking them", async () => {
    const now = new Date();
    const { key } = await keyWithVersion({ automaticRotation: true, rotationIntervalSeconds: 86400, nextRotationTime: new Date(now.getTime() - 1) });
    const unlock = await holdKeyRowLock(admin, key.keyId);
    try {
      expect((await store.dueForRotation(now, 1000)).map((k) => k.keyId)).toContain(key.keyId);
    } finally {
      await unlock();
    }
  });

  it("destroys keys whose deletion is due, leaving a tombstone, and skips rows another session holds", async () => {
    const past = new Date(Date.now() - DAY_MS);
    const [due, held] = [await keyWithVersion({ keyState: 3 }), await keyWithVersion({ keyState: 3 })];
    await admin`UPDATE keys SET delete_time = ${past} WHERE key_id IN ${admin([due.key.keyId, held.key.keyId])}`;
    await transactions.run((work) => work.createAlias({ aliasName: `alias/${due.key.keyId}`, keyId: due.key.keyId, creationTime: past, updateTime: past }));
    const unlock = await holdKeyRowLock(admin, held.key.keyId);
    let destroyed: string[];
    try {
      destroyed = await transactions.run(async (work) => {
        const keys = await work.lockDueForDeletion(new Date(), 100);
        for (const k of keys) await k.destroy(new Date());
        return keys.map((k) => k.record.keyId);
      });
    } finally {
      await unlock();
    }
    expect(destroyed).toContain(due.key.keyId);
    expect(destroyed).not.toContain(held.key.keyId);
    expect(await store.getKey(due.key.keyId)).toBeUndefined();
    expect((await store.getTombstone(due.key.keyId))?.keyVersionIds).toEqual([due.version.keyVersionId]);
    expect(await new AliasStore(sql).get(`alias/${due.key.keyId}`)).toBeUndefined();
  });
});

describe("aliases through units of work", () => {
  it("creates once, moves and deletes under the alias's lock", async () => {
    const [a, b] = [await keyWithVersion(), await keyWithVersion()];
    const name = `alias/${randomUUID()}`;
    const now = new Date();
    const record = { aliasName: name, keyId: a.key.keyId, creationTime: now, updateTime: now };
    expect((await transactions.run((work) => work.createAlias(record)))?.keyId).toBe(a.key.keyId);
    expect(await transactions.run((work) => work.createAlias({ ...record, keyId: b.key.keyId }))).toBeUndefined();
    const moved = await transactions.run(async (work) => {
      const alias = await work.lockAlias(name);
      expect((await alias!.target())?.keyId).toBe(a.key.keyId);
      return alias!.pointAt(b.key.keyId, new Date());
    });
    expect(moved.keyId).toBe(b.key.keyId);
    expect(await transactions.run(async (work) => (await work.lockAlias(name))!.delete())).toBe(true);
    expect(await transactions.run((work) => work.lockAlias(name))).toBeUndefined();
  });
});

describe("reconcile queries", () => {
  it("finds versions under other root keys and keys whose primary is missing", async () => {
    const foreign = await keyWithVersion({}, "root-elsewhere");
    const legacy = await keyWithVersion({}, "root-legacy");
    const broken = await keyWithVersion();
    await admin`UPDATE keys SET primary_key_version_id = NULL WHERE key_id = ${broken.key.keyId}`;
    const pending = newKey({ keyState: 4 });
    await transactions.run((work) => work.insertKey(pending, undefined));

    const unusable = (await versionsUnderOtherRoots(sql, ["root-1", "root-legacy"])).map((v) => v.keyVersionId);
    expect(unusable).toContain(foreign.version.keyVersionId);
    expect(unusable).not.toContain(legacy.version.keyVersionId);
    expect((await versionsUnderOtherRoots(sql, ["root-1"])).map((v) => v.keyVersionId)).toContain(legacy.version.keyVersionId);
    await expect(versionsUnderOtherRoots(sql, [])).rejects.toThrow("at least one root key id");

    const withoutPrimary = await keysWithoutPrimaryVersion(sql);
    expect(withoutPrimary).toContainEqual({ keyId: broken.key.keyId, keyState: 1, primaryKeyVersionId: null });
    expect(withoutPrimary.map((k) => k.keyId)).not.toContain(pending.keyId);
  });
});
