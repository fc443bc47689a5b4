// Fail-closed covers changes (issue 15, finding 7): a key change and its audit row commit together or not
// at all. With the audit write failing, a change answers UNAVAILABLE and leaves no trace: the database
// shows the old state afterwards. The write fails two ways: kms-api's own fault injection
// (KMS_FAULT_INJECT=audit-write-fail on a second replica) and a trigger the database administrator puts
// on audit_events (as a full disk or a revoked grant would).
import { status } from "@grpc/grpc-js";
import postgres from "postgres";
import { kmsResources } from "@kms/proto";
import { errorCode, grpcError, startStack } from "../harness";
import type { KmsClient, Stack } from "../harness";

jest.setTimeout(120_000);

const OPEN_POLICY = JSON.stringify({ Version: "1", Statement: [{ Sid: "everyone", Effect: "Allow", Principal: "*", Action: "kms:*", Resource: "*" }] });

let stack: Stack;
let sql: postgres.Sql;
beforeAll(async () => {
  stack = await startStack({ hsm: false });
  sql = postgres(stack.db.url, { max: 1, onnotice: () => {} });
});
afterAll(async () => {
  await sql?.end();
  await stack?.stop();
});

/** Everything a key change can touch, and the audit trail's length. */
async function snapshot() {
  const [s] = await sql<{ keys: unknown; versions: unknown; tags: unknown; aliases: unknown; tokens: unknown; audit: number }[]>`
    SELECT (SELECT json_agg(k ORDER BY key_id) FROM keys k) AS keys,
           (SELECT json_agg(v.key_version_id ORDER BY key_version_id) FROM key_versions v) AS versions,
           (SELECT json_agg(t ORDER BY key_id, tag_key) FROM key_tags t) AS tags,
           (SELECT json_agg(a ORDER BY alias_name) FROM aliases a) AS aliases,
           (SELECT count(*)::int FROM import_tokens) AS tokens,
           (SELECT count(*)::int FROM audit_events) AS audit`;
  return s!;
}

async function expectUnavailable(call: Promise<unknown>): Promise<void> {
  const err = await grpcError(call);
  expect([err.code, errorCode(err.metadata), err.details]).toEqual([status.UNAVAILABLE, "ServiceUnavailable", "audit log is unavailable; retry is safe"]);
}

/** The two changes of the finding, refused through `client`, then seen unchanged through the healthy one. */
async function scheduleDeletionAndOpenPolicy(client: KmsClient, keyId: string): Promise<void> {
  const policyBefore = (await stack.client.getKeyPolicy({ keyId })).policy;
  await expectUnavailable(client.scheduleKeyDeletion({ keyId, pendingWindowInDays: 7 }));
  await expectUnavailable(client.setKeyPolicy({ keyId, policy: OPEN_POLICY }));
  return expectOldState(keyId, policyBefore);
}

async function expectOldState(keyId: string, policyBefore: string): Promise<void> {
  const meta = (await stack.client.describeKey({ keyId })).keyMetadata!;
  expect([meta.keyState, meta.deleteTime]).toEqual([kmsResources.KeyState.ENABLED, undefined]);
  expect((await stack.client.getKeyPolicy({ keyId })).policy).toBe(policyBefore);
  expect(policyBefore).not.toBe(OPEN_POLICY);
}

describe("with kms-api's audit writes failing (fault injection)", () => {
  let faulty: KmsClient;
  beforeAll(async () => {
    faulty = (await stack.startReplica({ KMS_FAULT_INJECT: "audit-write-fail" })).client;
  });

  it("ScheduleKeyDeletion and a SetKeyPolicy granting kms:* to everyone answer UNAVAILABLE and change nothing", async () => {
    const keyId = (await stack.client.createKey({})).keyMetadata!.keyId;
    const before = await snapshot();
    await scheduleDeletionAndOpenPolicy(faulty, keyId);
    // Only the healthy replica's reads have rows: GetKeyPolicy, DescribeKey, GetKeyPolicy.
    expect(await snapshot()).toEqual({ ...before, audit: before.audit + 3 });
  });

  it("no other change takes effect either", async () => {
    const keyId = (await stack.client.createKey({})).keyMetadata!.keyId;
    const external = (await stack.client.createKey({ origin: kmsResources.Origin.EXTERNAL })).keyMetadata!.keyId;
    await stack.client.tagResource({ keyId, tags: { team: "a" } });
    await stack.client.createAlias({ aliasName: "alias/atomic-existing", keyId });
    const before = await snapshot();
    const changes: [string, () => Promise<unknown>][] = [
      ["CreateKey", () => faulty.createKey({})],
      ["CreateKey (external)", () => faulty.createKey({ origin: kmsResources.Origin.EXTERNAL })],
      ["DisableKey", () => faulty.disableKey({ keyId })],
      ["UpdateKeyDescription", () => faulty.updateKeyDescription({ keyId, description: "changed" })],
      ["SetDeletionProtection", () => faulty.setDeletionProtection({ keyId, enable: true })],
      ["CreateKeyVersion", () => faulty.createKeyVersion({ keyId })],
      ["UpdateRotationPolicy", () => faulty.updateRotationPolicy({ keyId, enableAutomaticRotation: true })],
      ["TagResource", () => faulty.tagResource({ keyId, tags: { team: "b" } })],
      ["UntagResource", () => faulty.untagResource({ keyId, tagKeys: ["team"] })],
      ["CreateAlias", () => faulty.createAlias({ aliasName: "alias/atomic-new", keyId })],
      ["UpdateAlias", () => faulty.updateAlias({ aliasName: "alias/atomic-existing", keyId: external })],
      ["DeleteAlias", () => faulty.deleteAlias({ aliasName: "alias/atomic-existing" })],
      ["GetParametersForImport", () => faulty.getParametersForImport({ keyId: external, wrappingAlgorithm: 1, wrappingKeySpec: 1 })],
    ];
    const answers: [string, number][] = [];
    for (const [name, call] of changes) answers.push([name, (await grpcError(call())).code]);
    expect(answers).toEqual(changes.map(([name]) => [name, status.UNAVAILABLE]));
    expect(await snapshot()).toEqual(before);
  });
});

describe("with audit_events refusing inserts (a trigger the database administrator installs)", () => {
  const refuse = async () => {
    await sql`CREATE OR REPLACE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
              BEGIN RAISE EXCEPTION 'audit storage refused the row'; END $$`;
    await sql`CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit()`;
  };
  const lift = () => sql`DROP TRIGGER refuse_audit ON audit_events`;

  it("ScheduleKeyDeletion and SetKeyPolicy answer UNAVAILABLE and have no effect; lifted, each writes exactly one row", async () => {
    const keyId = (await stack.client.createKey({})).keyMetadata!.keyId;
    const policyBefore = (await stack.client.getKeyPolicy({ keyId })).policy;
    await refuse();
    try {
      await expectUnavailable(stack.client.scheduleKeyDeletion({ keyId, pendingWindowInDays: 7 }));
      await expectUnavailable(stack.client.setKeyPolicy({ keyId, policy: OPEN_POLICY }));
    } finally {
      await lift();
    }
    await expectOldState(keyId, policyBefore);
    const changed = await sql<{ operation: string; resultCode: string }[]>`
      SELECT operation, result_code FROM audit_events WHERE key_id = ${keyId} AND operation IN ('ScheduleKeyDeletion', 'SetKeyPolicy')`;
    expect(changed).toEqual([]);

    // The fault lifted, the same changes take effect, each with one OK row, and the chain verifies.
    await stack.client.setKeyPolicy({ keyId, policy: OPEN_POLICY });
    await stack.client.scheduleKeyDeletion({ keyId, pendingWindowInDays: 7 });
    expect((await stack.client.describeKey({ keyId })).keyMetadata!.keyState).toBe(kmsResources.KeyState.PENDING_DELETION);
    const rows = await sql<{ operation: string; result_code: string; principal: string }[]>`
      SELECT operation, result_code, principal FROM audit_events
      WHERE key_id = ${keyId} AND operation IN ('ScheduleKeyDeletion', 'SetKeyPolicy') ORDER BY sequence`;
    expect(rows.map((r) => [r.operation, r.result_code, r.principal])).toEqual([
      ["SetKeyPolicy", "OK", "dev"],
      ["ScheduleKeyDeletion", "OK", "dev"],
    ]);
    expect(await stack.client.verifyAuditLog({})).toMatchObject({ ok: true, firstBadSequence: 0n });
  });
});
