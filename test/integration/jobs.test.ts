// Rotation by time and destruction after the pending window, driven by an injected clock (never by
// sleeping): two in-process kms-api replicas on the real Postgres and the real hsm-worker process.
import { randomBytes } from "node:crypto";
import { status } from "@grpc/grpc-js";
import postgres from "postgres";
import { kmsResources } from "@kms/proto";
import { errorCode, grpcError, startStack } from "../harness";
import type { Stack } from "../harness";
import { fakeClock, inProcessReplica } from "../in-process";

const { KeyState } = kmsResources;
const days = (d: number) => ({ seconds: BigInt(d * 86400) });

let stack: Stack;
const clock = fakeClock(new Date("2030-01-01T00:00:00Z"));
let a: Awaited<ReturnType<typeof inProcessReplica>>;
let b: Awaited<ReturnType<typeof inProcessReplica>>;

beforeAll(async () => {
  stack = await startStack();
  a = await inProcessReplica(stack, clock);
  b = await inProcessReplica(stack, clock);
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await stack?.stop();
});

async function versionCount(keyId: string): Promise<number> {
  return (await a.client.listKeyVersions({ keyId })).keyVersions.length;
}

it("rotates each due key exactly once with two replicas racing", async () => {
  const keys: string[] = [];
  for (let i = 0; i < 6; i++) {
    const meta = (await a.client.createKey({ enableAutomaticRotation: true, rotationInterval: days(7) })).keyMetadata!;
    expect(meta.nextRotationTime!.seconds).toBe(BigInt(clock.now.getTime() / 1000 + 7 * 86400));
    keys.push(meta.keyId);
  }
  const notDue = (await a.client.createKey({ enableAutomaticRotation: true, rotationInterval: days(30) })).keyMetadata!.keyId;
  const blob = (await a.client.encrypt({ keyId: keys[0]!, plaintext: Buffer.from("old") })).ciphertextBlob;

  clock.advanceDays(6);
  await Promise.all([a.jobs.runOnce(), b.jobs.runOnce()]);
  for (const keyId of keys) expect(await versionCount(keyId)).toBe(1);

  clock.advanceDays(2);
  await Promise.all([a.jobs.runOnce(), b.jobs.runOnce(), a.jobs.runOnce(), b.jobs.runOnce()]);
  await Promise.all([a.jobs.runOnce(), b.jobs.runOnce()]);
  for (const keyId of keys) {
    expect(await versionCount(keyId)).toBe(2);
    const meta = (await b.client.describeKey({ keyId })).keyMetadata!;
    expect(meta.lastRotationTime!.seconds).toBe(BigInt(clock.now.getTime() / 1000));
    expect(meta.nextRotationTime!.seconds).toBe(BigInt(clock.now.getTime() / 1000 + 7 * 86400));
  }
  expect(await versionCount(notDue)).toBe(1);
  expect(Buffer.from((await b.client.decrypt({ ciphertextBlob: blob })).plaintext).toString()).toBe("old");

  clock.advanceDays(7);
  await Promise.all([a.jobs.runOnce(), b.jobs.runOnce()]);
  for (const keyId of keys) expect(await versionCount(keyId)).toBe(3);
  expect(Buffer.from((await a.client.decrypt({ ciphertextBlob: blob })).plaintext).toString()).toBe("old");

  // Each rotation is in the audit chain once, naming the version it made, as the service's own change.
  const sql = postgres(stack.db.url, { max: 1, onnotice: () => {} });
  try {
    for (const keyId of keys) {
      const made = (await a.client.listKeyVersions({ keyId })).keyVersions.map((v) => v.keyVersionId);
      const rows = await sql`SELECT principal, key_version_id FROM audit_events WHERE key_id = ${keyId} AND operation = 'AutomaticRotation' ORDER BY sequence`;
      expect(rows.map((r) => r.principal)).toEqual(["kms:system", "kms:system"]);
      expect(rows.map((r) => r.key_version_id).sort()).toEqual(made.filter((v) => v !== made[0]).sort());
    }
  } finally {
    await sql.end();
  }
  expect((await a.client.verifyAuditLog({})).ok).toBe(true);
});

it("does not rotate a disabled key", async () => {
  const keyId = (await a.client.createKey({ enableAutomaticRotation: true, rotationInterval: days(7) })).keyMetadata!.keyId;
  await a.client.disableKey({ keyId });
  clock.advanceDays(8);
  await a.jobs.runOnce();
  expect(await versionCount(keyId)).toBe(1);
});

it("destroys a key when its window ends, leaving only a tombstone", async () => {
  const keyId = (await a.client.createKey({})).keyMetadata!.keyId;
  await a.client.createKeyVersion({ keyId });
  const alias = `alias/doomed-${randomBytes(3).toString("hex")}`;
  await a.client.createAlias({ aliasName: alias, keyId });
  await a.client.tagResource({ keyId, tags: { t: "v" } });
  const { ciphertextBlob } = await a.client.encrypt({ keyId, plaintext: Buffer.from("bye") });
  const scheduled = (await a.client.scheduleKeyDeletion({ keyId, pendingWindowInDays: 7 })).keyMetadata!;
  expect(scheduled.keyState).toBe(KeyState.PENDING_DELETION);

  clock.advanceDays(6);
  await Promise.all([a.jobs.runOnce(), b.jobs.runOnce()]);
  expect((await a.client.describeKey({ keyId })).keyMetadata!.keyState).toBe(KeyState.PENDING_DELETION);

  clock.advanceDays(1);
  await Promise.all([a.jobs.runOnce(), b.jobs.runOnce()]);
  for (const call of [
    () => a.client.describeKey({ keyId }),
    () => b.client.encrypt({ keyId, plaintext: Buffer.from("x") }),
    () => b.client.cancelKeyDeletion({ keyId }),
    () => a.client.listKeyVersions({ keyId }),
    () => a.client.listResourceTags({ keyId }),
    () => a.client.decrypt({ ciphertextBlob }),
  ]) {
    const err = await grpcError(call());
    expect(err.code).toBe(status.NOT_FOUND);
    expect(errorCode(err.metadata)).toBe("Forbidden.KeyNotFound");
    expect(err.details).toBe(`key ${keyId} was deleted on ${clock.now.toISOString()}`);
  }
  const aliasGone = await grpcError(a.client.describeKey({ keyId: alias }));
  expect(aliasGone.code).toBe(status.NOT_FOUND);

  const sql = postgres(stack.db.url, { max: 1, onnotice: () => {} });
  try {
    expect((await sql`SELECT 1 FROM key_versions WHERE key_id = ${keyId}`).length).toBe(0);
    expect((await sql`SELECT 1 FROM keys WHERE key_id = ${keyId}`).length).toBe(0);
    expect((await sql`SELECT 1 FROM key_tags WHERE key_id = ${keyId}`).length).toBe(0);
    const tomb = await sql`SELECT creator, deletion_requested_by, cardinality(key_version_ids) AS n FROM key_tombstones WHERE key_id = ${keyId}`;
    expect(tomb.map((r) => [r.creator, r.deletion_requested_by, r.n])).toEqual([["dev", "dev", 2]]);
    // The destruction is in the audit chain, once, as the service's own change.
    const rows = await sql`SELECT principal, result_code FROM audit_events WHERE key_id = ${keyId} AND operation = 'KeyDestruction'`;
    expect(rows.map((r) => [r.principal, r.result_code])).toEqual([["kms:system", "OK"]]);
  } finally {
    await sql.end();
  }
});
