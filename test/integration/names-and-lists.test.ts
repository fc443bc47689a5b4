// Issue 15 #4, #9 and #11 through the real processes: alias names cannot be squatted, lists show only
// keys the caller may describe, a caller without permission learns nothing from the answers, ListKeys'
// filter is bounded, and a database statement never outlives the call's deadline (or the ceiling).
import { generateKeyPairSync } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { Metadata, status } from "@grpc/grpc-js";
import { SignJWT, exportJWK } from "jose";
import postgres from "postgres";
import { holdKeyRowLock } from "@kms/db";
import { kmsResources } from "@kms/proto";
import { errorCode, grpcError, startStack } from "../harness";
import type { KmsClient, Stack } from "../harness";

const { KeySpec, KeyUsage, SigningAlgorithm } = kmsResources;

const ALICE = "spiffe://example.org/ns/payments/sa/alice";
const BOB = "bob";
const ADMIN = "ops";
const ALIAS = "alias/payments/signer";

let stack: Stack;
let client: KmsClient;
let admin: postgres.Sql;
const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });

async function as(sub: string): Promise<{ metadata: Metadata }> {
  const jwt = await new SignJWT({})
    .setProtectedHeader({ alg: "RS256", kid: "k1" })
    .setIssuer("https://issuer.test")
    .setAudience("kms")
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime("10m")
    .sign(privateKey);
  const metadata = new Metadata();
  metadata.set("authorization", `Bearer ${jwt}`);
  return { metadata };
}

async function jwtReplica(env: NodeJS.ProcessEnv = {}): Promise<KmsClient> {
  const jwks = path.join(stack.dataDir, "jwks.json");
  writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256", use: "sig" }] }));
  const replica = await stack.startReplica({
    KMS_JWT_JWKS_FILE: jwks,
    KMS_JWT_ISSUER: "https://issuer.test",
    KMS_JWT_AUDIENCE: "kms",
    KMS_ADMINS: ADMIN,
    KMS_ALIAS_PREFIXES: `${ALICE}=alias/payments/;${BOB}=alias/bob/`,
    ...env,
  });
  return replica.client;
}

beforeAll(async () => {
  stack = await startStack();
  client = await jwtReplica();
  admin = postgres(stack.db.url, { max: 2, onnotice: () => {}, transform: { column: { from: postgres.toCamel } } });
});
afterAll(async () => {
  await admin?.end();
  await stack?.stop();
});

type KeyCall = (keyId: string, options: { metadata: Metadata }) => Promise<unknown>;
function callOf(operation: string): KeyCall {
  const calls: Record<string, KeyCall> = {
    TagResource: (keyId, o) => client.tagResource({ keyId, tags: { a: "b" } }, o),
    UntagResource: (keyId, o) => client.untagResource({ keyId, tagKeys: ["a"] }, o),
    ListResourceTags: (keyId, o) => client.listResourceTags({ keyId }, o),
    DisableKey: (keyId, o) => client.disableKey({ keyId }, o),
    UpdateKeyDescription: (keyId, o) => client.updateKeyDescription({ keyId, description: "mine" }, o),
    ScheduleKeyDeletion: (keyId, o) => client.scheduleKeyDeletion({ keyId, pendingWindowInDays: 7 }, o),
    CreateKeyVersion: (keyId, o) => client.createKeyVersion({ keyId }, o),
  };
  return calls[operation]!;
}

const signingKey = async (who: string, description: string, tags: Record<string, string> = {}) =>
  (await client.createKey({ keySpec: KeySpec.EC_P256, keyUsage: KeyUsage.SIGN_VERIFY, description, tags }, await as(who))).keyMetadata!.keyId;

describe("alias names (#9)", () => {
  it("bob cannot register the name alice's service expects, so alice never verifies bob's signature through it", async () => {
    const bobKey = await signingKey(BOB, "bob's");
    const message = Buffer.from("pay 1000 to bob");
    const signed = await client.asymmetricSign(
      { keyId: bobKey, algorithm: SigningAlgorithm.ECDSA_SHA_256, input: { case: "message", value: message } },
      await as(BOB),
    );
    const squat = await grpcError(client.createAlias({ aliasName: ALIAS, keyId: bobKey }, await as(BOB)));
    expect([squat.code, errorCode(squat.metadata), squat.details]).toEqual([
      status.PERMISSION_DENIED,
      "Forbidden.NoPermission",
      `kms:CreateAlias on ${ALIAS} is not allowed for ${BOB} (KMS_ALIAS_PREFIXES)`,
    ]);
    // Alice's verify through the name finds nothing (she manages the name, so she may know that).
    const verify = await grpcError(
      client.asymmetricVerify(
        { keyId: ALIAS, algorithm: SigningAlgorithm.ECDSA_SHA_256, input: { case: "message", value: message }, value: signed.value },
        await as(ALICE),
      ),
    );
    expect([verify.code, errorCode(verify.metadata)]).toEqual([status.NOT_FOUND, "Forbidden.AliasNotFound"]);
    // Inside his own names bob may alias his own key, but not alice's.
    const own = await client.createAlias({ aliasName: "alias/bob/signer", keyId: bobKey }, await as(BOB));
    expect(own.alias?.keyId).toBe(bobKey);
    const aliceKey = await signingKey(ALICE, "alice's");
    const borrow = await grpcError(client.createAlias({ aliasName: "alias/bob/alice", keyId: aliceKey }, await as(BOB)));
    expect([borrow.code, borrow.details]).toEqual([status.PERMISSION_DENIED, `kms:CreateAlias on key ${aliceKey} is not allowed for ${BOB}`]);
  });

  it("bob can neither move nor delete alice's alias, and the refusal does not name her key", async () => {
    const aliceKey = await signingKey(ALICE, "alice's signer");
    await client.createAlias({ aliasName: ALIAS, keyId: aliceKey }, await as(ALICE));
    const bobKey = await signingKey(BOB, "bob's other");
    const move = await grpcError(client.updateAlias({ aliasName: ALIAS, keyId: bobKey }, await as(BOB)));
    const remove = await grpcError(client.deleteAlias({ aliasName: ALIAS }, await as(BOB)));
    expect([move.code, move.details, remove.code, remove.details]).toEqual([
      status.PERMISSION_DENIED,
      `kms:UpdateAlias on ${ALIAS} is not allowed for ${BOB} (KMS_ALIAS_PREFIXES)`,
      status.PERMISSION_DENIED,
      `kms:DeleteAlias on ${ALIAS} is not allowed for ${BOB} (KMS_ALIAS_PREFIXES)`,
    ]);
    const [row] = await admin<{ keyId: string }[]>`SELECT key_id FROM aliases WHERE alias_name = ${ALIAS}`;
    expect(row!.keyId).toBe(aliceKey);
  });
});

describe("lists and answers to a caller without permission (#9)", () => {
  let aliceKey: string;
  let bobKey: string;
  beforeAll(async () => {
    aliceKey = await signingKey(ALICE, "alice: payments ledger signer", { team: "payments" });
    await client.createAlias({ aliasName: "alias/payments/ledger", keyId: aliceKey }, await as(ALICE));
    bobKey = await signingKey(BOB, "bob: scratch", { team: "bob" });
  });

  const allKeyIds = () => admin<{ keyId: string; creator: string }[]>`SELECT key_id, creator FROM keys`;

  it("alice lists only her keys and aliases; bob sees none of her descriptions, tags or aliases", async () => {
    const keys = await allKeyIds();
    const aliceList = (await client.listKeys({ pageSize: 1000 }, await as(ALICE))).keys;
    const bobList = (await client.listKeys({ pageSize: 1000 }, await as(BOB))).keys;
    const adminList = (await client.listKeys({ pageSize: 1000 }, await as(ADMIN))).keys;
    const ids = (list: { keyId: string }[]) => list.map((k) => k.keyId).sort();
    expect(ids(aliceList)).toEqual(keys.filter((k) => k.creator === ALICE).map((k) => k.keyId).sort());
    expect(ids(bobList)).toEqual(keys.filter((k) => k.creator === BOB).map((k) => k.keyId).sort());
    expect(ids(adminList)).toEqual(keys.map((k) => k.keyId).sort());
    expect(ids(bobList)).toContain(bobKey);
    expect(ids(aliceList)).toContain(aliceKey);
    expect(bobList.filter((k) => k.description.startsWith("alice") || k.tags.team === "payments")).toEqual([]);
    // A tag filter does not find her keys for him either.
    expect((await client.listKeys({ filter: { tags: { team: "payments" } } }, await as(BOB))).keys).toEqual([]);

    const aliasesOf = async (who: string) => (await client.listAliases({ pageSize: 1000 }, await as(who))).aliases.map((a) => a.aliasName).sort();
    const bobAliases = await aliasesOf(BOB);
    expect(bobAliases.filter((n) => n.startsWith("alias/payments/"))).toEqual([]);
    expect(await aliasesOf(ALICE)).toContain("alias/payments/ledger");
    expect((await aliasesOf(ALICE)).filter((n) => n.startsWith("alias/bob/"))).toEqual([]);
    const byKey = await grpcError(client.listAliasesByKeyId({ keyId: aliceKey }, await as(BOB)));
    expect(byKey.code).toBe(status.PERMISSION_DENIED);
  });

  it("an alias bob may not use and one that does not exist get the same answer, naming neither key", async () => {
    const existing = await grpcError(client.describeKey({ keyId: "alias/payments/ledger" }, await as(BOB)));
    const missing = await grpcError(client.describeKey({ keyId: "alias/payments/no-such" }, await as(BOB)));
    expect([existing.code, errorCode(existing.metadata), existing.details]).toEqual([
      status.PERMISSION_DENIED,
      "Forbidden.NoPermission",
      `kms:DescribeKey on alias/payments/ledger is not allowed for ${BOB}`,
    ]);
    expect([missing.code, errorCode(missing.metadata), missing.details]).toEqual([
      status.PERMISSION_DENIED,
      "Forbidden.NoPermission",
      `kms:DescribeKey on alias/payments/no-such is not allowed for ${BOB}`,
    ]);
    expect(existing.details.includes(aliceKey)).toBe(false);
  });

  it("a key id bob may not use and one that does not exist get the same answer", async () => {
    const unknown = "2b6e0c3a-0000-4000-8000-000000000000";
    const existing = await grpcError(client.describeKey({ keyId: aliceKey }, await as(BOB)));
    const missing = await grpcError(client.describeKey({ keyId: unknown }, await as(BOB)));
    expect([existing.code, errorCode(existing.metadata), existing.details.replace(aliceKey, "ID")]).toEqual([
      missing.code,
      errorCode(missing.metadata),
      missing.details.replace(unknown, "ID"),
    ]);
    expect(missing.code).toBe(status.PERMISSION_DENIED);
    // An administrator is told the truth.
    const told = await grpcError(client.describeKey({ keyId: unknown }, await as(ADMIN)));
    expect([told.code, errorCode(told.metadata)]).toEqual([status.NOT_FOUND, "Forbidden.KeyNotFound"]);
  });

  // Every RPC that changes a key or reads its tags: an existing key or alias bob may not use, and one that
  // does not exist, give the same refusal, naming only what bob sent.
  it.each(["TagResource", "UntagResource", "ListResourceTags", "DisableKey", "UpdateKeyDescription", "ScheduleKeyDeletion", "CreateKeyVersion"])("%s: bob gets the same answer for alice's key or alias as for none", async (operation) => {
    const unknown = "2b6e0c3a-0000-4000-8000-0000000000aa";
    const call = async (keyId: string) => {
      const options = await as(BOB);
      const err = await grpcError(callOf(operation)(keyId, options));
      return [err.code, errorCode(err.metadata), err.details];
    };
    const denied = (name: string) => [status.PERMISSION_DENIED, "Forbidden.NoPermission", `kms:${operation} on ${name} is not allowed for ${BOB}`];
    const byId = await call(aliceKey);
    expect(byId).toEqual(denied(`key ${aliceKey}`));
    expect(await call(unknown)).toEqual(denied(`key ${unknown}`));
    expect(await call("alias/payments/ledger")).toEqual(denied("alias/payments/ledger"));
    expect(await call("alias/payments/no-such")).toEqual(denied("alias/payments/no-such"));
    // Nothing happened to alice's key.
    const after = (await client.describeKey({ keyId: aliceKey }, await as(ALICE))).keyMetadata!;
    expect([after.keyState, after.description === "mine", after.tags["a"]]).toEqual([kmsResources.KeyState.ENABLED, false, undefined]);
  });
});

describe("ListKeys' filter and the database's time (#4)", () => {
  const manyTags = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`t${i}`, `v${i}`]));

  /** kms-api backends of this database running or waiting on a statement. */
  const busyBackends = async (like: string) => {
    const [row] = await admin<{ n: number }[]>`
      SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = ${stack.db.name} AND state = 'active' AND pid <> pg_backend_pid() AND query LIKE ${like}`;
    return row!.n;
  };

  it.each([1000, 10_000])("refuses %i tag filters with INVALID_ARGUMENT naming filter.tags", async (n) => {
    const err = await grpcError(stack.client.listKeys({ filter: { tags: manyTags(n) } }, { deadline: 20_000 }));
    expect([err.code, errorCode(err.metadata), err.details]).toEqual([status.INVALID_ARGUMENT, "InvalidParameter", `filter.tags: at most 20 tags, got ${n}`]);
    expect(await busyBackends("%key_tags%")).toBe(0);
  });

  it("validates filter tag lengths like TagResource, and still answers 20", async () => {
    const long = await grpcError(stack.client.listKeys({ filter: { tags: { ["k".repeat(129)]: "v" } } }));
    expect([long.code, long.details]).toEqual([status.INVALID_ARGUMENT, "filter.tags: tag keys must be 1 to 128 characters"]);
    expect((await stack.client.listKeys({ filter: { tags: manyTags(20) } })).keys).toEqual([]);
  });

  /** As the database administrator, holds the key's row lock until the returned function is called. */
  const lockKeyRow = (keyId: string) => holdKeyRowLock(admin, keyId);

  it("frees the backend when a statement outlives the call's deadline (the key row locked by someone else)", async () => {
    const keyId = (await stack.client.createKey({})).keyMetadata!.keyId;
    const unlock = await lockKeyRow(keyId);
    try {
      const err = await grpcError(stack.client.tagResource({ keyId, tags: { a: "b" } }, { deadline: 1000 }));
      expect(err.code).toBe(status.DEADLINE_EXCEEDED);
      // While the lock is still held, kms-api's waiting statement goes away (polls counted, not timed).
      let polls = 0;
      while ((await busyBackends("%FOR UPDATE%")) > 0 && polls < 100) {
        polls++;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await busyBackends("%FOR UPDATE%")).toBe(0);
    } finally {
      await unlock();
    }
    // The client's own timer answered it: kms-api writes the call's row once its statement is cancelled,
    // which may be a moment later (polls counted, not timed).
    const auditRows = () => admin<{ resultCode: string; errorCode: string }[]>`
      SELECT result_code, error_code FROM audit_events WHERE key_id = ${keyId} AND operation = 'TagResource'`;
    let rows = await auditRows();
    for (let polls = 0; rows.length === 0 && polls < 100; polls++) {
      await new Promise((r) => setTimeout(r, 100));
      rows = await auditRows();
    }
    expect(rows).toEqual([{ resultCode: "DEADLINE_EXCEEDED", errorCode: "DeadlineExceeded" }]);
    expect((await stack.client.listResourceTags({ keyId })).tags).toEqual({});
  });

  it("cancels a statement past KMS_DB_STATEMENT_TIMEOUT_MS even when the caller set no deadline", async () => {
    const { client: tight } = await stack.startReplica({ KMS_DB_STATEMENT_TIMEOUT_MS: "300" });
    const keyId = (await tight.createKey({})).keyMetadata!.keyId;
    const unlock = await lockKeyRow(keyId);
    try {
      const err = await grpcError(tight.tagResource({ keyId, tags: { a: "b" } }));
      expect([err.code, errorCode(err.metadata), err.details]).toEqual([
        status.DEADLINE_EXCEEDED,
        "DeadlineExceeded",
        "database did not answer before the deadline",
      ]);
    } finally {
      await unlock();
    }
  });
});
