// Grants (docs/grants.md) through the real processes: alice's key, bob the grantee, carol the retiring
// principal, each authenticating with a client certificate whose URI SAN is the principal. Two kms-api
// replicas on one database; the second caches metadata for a minute and hears no notifications, so only
// a grant token can make a fresh grant usable there.
import { createPublicKey, diffieHellman, generateKeyPairSync, randomUUID } from "node:crypto";
import { status } from "@grpc/grpc-js";
import postgres from "postgres";
import { kmsResources } from "@kms/proto";
import { errorCode, grpcError, startStack } from "../harness";
import type { KmsClient, Stack } from "../harness";
import { principalPki } from "../principal-fixtures";

jest.setTimeout(120_000);

const ALICE = "spiffe://example.org/ns/apps/sa/alice";
const BOB = "spiffe://example.org/ns/apps/sa/bob";
const CAROL = "spiffe://example.org/ns/apps/sa/carol";
const AUDITOR = "spiffe://example.org/ns/kms/sa/auditor";

const callers = principalPki("grant-clients", { alice: ALICE, bob: BOB, carol: CAROL, auditor: AUDITOR });

let stack: Stack;
let alice: KmsClient;
let bob: KmsClient;
let carol: KmsClient;
let auditor: KmsClient;
/** bob on the second replica (cache 60 s, no notifications). */
let bobOnStale: KmsClient;

beforeAll(async () => {
  stack = await startStack({ hsm: false });
  const env = { ...callers.tlsEnv, KMS_CREATORS: `${ALICE},${BOB}`, KMS_ADMINS: "", KMS_AUDITORS: AUDITOR, KMS_JOB_INTERVAL_MS: "50" };
  const a = await stack.startReplica(env);
  const stale = await stack.startReplica({ ...env, KMS_METADATA_CACHE_TTL_MS: "60000", KMS_DB_NOTIFICATIONS: "false" });
  a.client.close();
  stale.client.close();
  alice = callers.client(a.api.address, "alice");
  bob = callers.client(a.api.address, "bob");
  carol = callers.client(a.api.address, "carol");
  auditor = callers.client(a.api.address, "auditor");
  bobOnStale = callers.client(stale.api.address, "bob");
});
afterAll(async () => {
  callers.close();
  await stack?.stop();
});

const plaintext = Buffer.from("secret");
const newKey = async (policy = "") => (await alice.createKey({ policy })).keyMetadata!.keyId;
const denial = (keyId: string, action = "kms:Encrypt") => `${action} on key ${keyId} is not allowed for ${BOB}`;

async function expectDenied(call: Promise<unknown>, details?: string): Promise<void> {
  const err = await grpcError(call);
  expect([err.code, errorCode(err.metadata)]).toEqual([status.PERMISSION_DENIED, "Forbidden.NoPermission"]);
  if (details !== undefined) expect(err.details).toBe(details);
}

describe("a grant to bob on alice's key", () => {
  it("lets bob encrypt only under its constraints and only the operations it names; the audit row names it", async () => {
    const keyId = await newKey();
    await expectDenied(bob.encrypt({ keyId, plaintext, encryptionContext: { app: "x" } }), denial(keyId));

    const { grantId, grantToken } = await alice.createGrant({
      keyId,
      granteePrincipal: BOB,
      operations: ["Encrypt"],
      retiringPrincipal: CAROL,
      constraints: { encryptionContextSubset: { app: "x" } },
      name: "bob-app-x",
    });
    expect(grantId).toMatch(/^[0-9a-f-]{36}$/);
    expect(grantToken).not.toBe("");

    const made = await bob.encrypt({ keyId, plaintext, encryptionContext: { app: "x", more: "1" } });
    expect(made.keyId).toBe(keyId);
    // The ciphertext is alice's key's: she decrypts it.
    expect(Buffer.from((await alice.decrypt({ ciphertextBlob: made.ciphertextBlob, encryptionContext: { app: "x", more: "1" } })).plaintext)).toEqual(plaintext);

    await expectDenied(bob.encrypt({ keyId, plaintext, encryptionContext: { app: "y" } }), denial(keyId));
    await expectDenied(bob.encrypt({ keyId, plaintext }), denial(keyId));
    await expectDenied(bob.decrypt({ ciphertextBlob: made.ciphertextBlob, encryptionContext: { app: "x", more: "1" } }), denial(keyId, "kms:Decrypt"));
    await expectDenied(bob.generateDataKey({ keyId, encryptionContext: { app: "x" } }), denial(keyId, "kms:GenerateDataKey"));
    await expectDenied(bob.disableKey({ keyId }), denial(keyId, "kms:DisableKey"));

    const { events } = await auditor.listAuditEvents({ keyId, principal: BOB, operation: "Encrypt" });
    expect(events.map((e) => [e.resultCode, e.grantId])).toEqual([
      ["PERMISSION_DENIED", ""],
      ["OK", grantId],
      ["PERMISSION_DENIED", ""],
      ["PERMISSION_DENIED", ""],
    ]);
    // alice's own calls are the key policy's: no grant named.
    const alices = await auditor.listAuditEvents({ keyId, principal: ALICE, operation: "CreateGrant" });
    expect(alices.events.map((e) => [e.resultCode, e.grantId])).toEqual([["OK", grantId]]);
    const verified = await auditor.verifyAuditLog({});
    expect(verified.ok).toBe(true);
  });

  it("with encryption_context_equals needs exactly that context", async () => {
    const keyId = await newKey();
    await alice.createGrant({ keyId, granteePrincipal: BOB, operations: ["Encrypt", "Decrypt"], constraints: { encryptionContextEquals: { app: "x" } } });
    const { ciphertextBlob } = await bob.encrypt({ keyId, plaintext, encryptionContext: { app: "x" } });
    expect(Buffer.from((await bob.decrypt({ ciphertextBlob, encryptionContext: { app: "x" } })).plaintext)).toEqual(plaintext);
    await expectDenied(bob.encrypt({ keyId, plaintext, encryptionContext: { app: "x", more: "1" } }), denial(keyId));
  });

  it("can give DeriveSharedSecret on a key agreement key, and only that", async () => {
    const { KeySpec, KeyUsage, KeyAgreementAlgorithm } = kmsResources;
    const keyId = (await alice.createKey({ keySpec: KeySpec.EC_P256, keyUsage: KeyUsage.KEY_AGREEMENT })).keyMetadata!.keyId;
    const peer = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const request = { keyId, keyAgreementAlgorithm: KeyAgreementAlgorithm.ECDH, publicKey: peer.publicKey.export({ type: "spki", format: "der" }) };
    await expectDenied(bob.deriveSharedSecret(request), denial(keyId, "kms:DeriveSharedSecret"));
    await alice.createGrant({ keyId, granteePrincipal: BOB, operations: ["DeriveSharedSecret"] });
    const { sharedSecret } = await bob.deriveSharedSecret(request);
    const kmsPublic = createPublicKey((await alice.getPublicKey({ keyId })).publicKey);
    expect(Buffer.from(sharedSecret)).toEqual(diffieHellman({ privateKey: peer.privateKey, publicKey: kmsPublic }));
    await expectDenied(bob.getPublicKey({ keyId }), denial(keyId, "kms:GetPublicKey"));
  });

  it("is idempotent by name: the same terms give the same grant and token, other terms ALREADY_EXISTS", async () => {
    const keyId = await newKey();
    const request = { keyId, granteePrincipal: BOB, operations: ["Encrypt", "Decrypt"], name: "app/one" };
    const first = await alice.createGrant(request);
    const again = await alice.createGrant({ ...request, operations: ["Decrypt", "Encrypt"] });
    expect(again).toEqual(first);
    const err = await grpcError(alice.createGrant({ ...request, operations: ["Encrypt"] }));
    expect([err.code, errorCode(err.metadata)]).toEqual([status.ALREADY_EXISTS, "AlreadyExists.Grant"]);
    expect((await alice.listGrants({ keyId })).grants).toHaveLength(1);
  });

  it("is listed by key for who may ListGrants, and by retiring principal for that principal only", async () => {
    const keyId = await newKey();
    const { grantId } = await alice.createGrant({ keyId, granteePrincipal: BOB, operations: ["Encrypt"], retiringPrincipal: CAROL });
    const second = await alice.createGrant({ keyId, granteePrincipal: CAROL, operations: ["DescribeKey"] });
    const listed = (await alice.listGrants({ keyId })).grants;
    expect(listed.map((g) => [g.grantId, g.granteePrincipal, g.retiringPrincipal, g.operations, g.issuingPrincipal])).toEqual([
      [grantId, BOB, CAROL, ["Encrypt"], ALICE],
      [second.grantId, CAROL, "", ["DescribeKey"], ALICE],
    ]);
    // Pages of one, and the filters.
    const page1 = await alice.listGrants({ keyId, pageSize: 1 });
    const page2 = await alice.listGrants({ keyId, pageSize: 1, pageToken: page1.nextPageToken });
    expect([page1.grants[0]!.grantId, page2.grants[0]!.grantId, page2.nextPageToken]).toEqual([grantId, second.grantId, ""]);
    expect((await alice.listGrants({ keyId, granteePrincipal: CAROL })).grants.map((g) => g.grantId)).toEqual([second.grantId]);
    expect((await alice.listGrants({ keyId, grantId })).grants.map((g) => g.grantId)).toEqual([grantId]);
    await expectDenied(bob.listGrants({ keyId }), denial(keyId, "kms:ListGrants"));

    expect((await carol.listRetirableGrants({})).grants.map((g) => g.grantId)).toContain(grantId);
    await expectDenied(bob.listRetirableGrants({ retiringPrincipal: CAROL }));
    expect((await bob.listRetirableGrants({})).grants.map((g) => g.grantId)).not.toContain(grantId);
    // A grant to carol to DescribeKey lets her describe the key.
    expect((await carol.describeKey({ keyId })).keyMetadata!.keyId).toBe(keyId);
  });

  it("stops at retirement (by the retiring principal, by token) and at revocation (by the key policy)", async () => {
    const keyId = await newKey();
    const retirable = await alice.createGrant({ keyId, granteePrincipal: BOB, operations: ["Encrypt"], retiringPrincipal: CAROL });
    await bob.encrypt({ keyId, plaintext });
    // bob's grant has no RetireGrant: he may not retire it.
    await expectDenied(bob.retireGrant({ grantToken: retirable.grantToken }), `kms:RetireGrant of this grant is not allowed for ${BOB}`);
    expect(await carol.retireGrant({ grantToken: retirable.grantToken })).toMatchObject({ grantId: retirable.grantId, keyId });
    await expectDenied(bob.encrypt({ keyId, plaintext, grantTokens: [retirable.grantToken] }), denial(keyId));
    // Gone: retiring again is the same refusal as retiring a grant one may not.
    await expectDenied(carol.retireGrant({ grantToken: retirable.grantToken }), `kms:RetireGrant of this grant is not allowed for ${CAROL}`);

    // A grantee with RetireGrant may retire its own grant, by key and grant id.
    const own = await alice.createGrant({ keyId, granteePrincipal: BOB, operations: ["Encrypt", "RetireGrant"] });
    await bob.encrypt({ keyId, plaintext });
    await bob.retireGrant({ keyId, grantId: own.grantId });
    await expectDenied(bob.encrypt({ keyId, plaintext }), denial(keyId));

    const revocable = await alice.createGrant({ keyId, granteePrincipal: BOB, operations: ["Encrypt"] });
    await bob.encrypt({ keyId, plaintext });
    await expectDenied(bob.revokeGrant({ keyId, grantId: revocable.grantId }), denial(keyId, "kms:RevokeGrant"));
    await alice.revokeGrant({ keyId, grantId: revocable.grantId });
    await expectDenied(bob.encrypt({ keyId, plaintext, grantTokens: [revocable.grantToken] }), denial(keyId));
    const again = await grpcError(alice.revokeGrant({ keyId, grantId: revocable.grantId }));
    expect([again.code, errorCode(again.metadata)]).toEqual([status.NOT_FOUND, "Forbidden.GrantNotFound"]);
    expect((await alice.listGrants({ keyId })).grants).toEqual([]);
  });

  it("loses to an explicit Deny in the key policy", async () => {
    const policy = JSON.stringify({
      Version: "1",
      Statement: [
        { Sid: "owner", Effect: "Allow", Principal: [ALICE], Action: "kms:*", Resource: "*" },
        { Sid: "never-bob", Effect: "Deny", Principal: [BOB], Action: "kms:Encrypt", Resource: "*" },
      ],
    });
    const keyId = await newKey(policy);
    const { grantToken } = await alice.createGrant({ keyId, granteePrincipal: BOB, operations: ["Encrypt", "GenerateDataKey"] });
    await expectDenied(bob.encrypt({ keyId, plaintext, grantTokens: [grantToken] }), `kms:Encrypt on key ${keyId} is denied by its key policy`);
    // What the Deny does not name, the grant allows.
    expect((await bob.generateDataKey({ keyId, numberOfBytes: 32 })).keyId).toBe(keyId);
  });

  it("never grants on another key; a forged or other key's token looks like a key that does not exist", async () => {
    const keyId = await newKey();
    const other = await newKey();
    const { grantToken } = await alice.createGrant({ keyId: other, granteePrincipal: BOB, operations: ["Encrypt"] });
    expect((await bob.encrypt({ keyId: other, plaintext })).keyId).toBe(other);
    const forged = grantToken.slice(0, -2) + (grantToken.endsWith("AA") ? "BB" : "AA");
    const missing = randomUUID();
    const refusals = await Promise.all([
      grpcError(bob.encrypt({ keyId, plaintext, grantTokens: [grantToken] })),
      grpcError(bob.encrypt({ keyId, plaintext, grantTokens: [forged] })),
      grpcError(bob.encrypt({ keyId, plaintext, grantTokens: ["kmsgt1.not-a-token"] })),
      grpcError(bob.encrypt({ keyId: missing, plaintext, grantTokens: [grantToken] })),
    ]);
    expect(refusals.map((e) => [e.code, errorCode(e.metadata), e.details])).toEqual([
      [status.PERMISSION_DENIED, "Forbidden.NoPermission", denial(keyId)],
      [status.PERMISSION_DENIED, "Forbidden.NoPermission", denial(keyId)],
      [status.PERMISSION_DENIED, "Forbidden.NoPermission", denial(keyId)],
      [status.PERMISSION_DENIED, "Forbidden.NoPermission", denial(missing)],
    ]);
    // Retiring with a forged token is the same refusal as with a real one the caller may not use.
    await expectDenied(bob.retireGrant({ grantToken: forged }), `kms:RetireGrant of this grant is not allowed for ${BOB}`);
  });

  it("checks its fields: operations from the list, one constraint of at most 8 pairs, only with context operations", async () => {
    const keyId = await newKey();
    const bad = async (request: Record<string, unknown>, field: string) => {
      const err = await grpcError(alice.createGrant({ keyId, granteePrincipal: BOB, operations: ["Encrypt"], ...request }));
      expect([err.code, errorCode(err.metadata)]).toEqual([status.INVALID_ARGUMENT, "InvalidParameter"]);
      expect(err.details.startsWith(`${field}:`)).toBe(true);
    };
    await bad({ operations: [] }, "operations");
    await bad({ operations: ["CreateGrant"] }, "operations[0]");
    await bad({ operations: ["Encrypt", "kms:Decrypt"] }, "operations[1]");
    await bad({ granteePrincipal: "" }, "grantee_principal");
    await bad({ granteePrincipal: "x".repeat(257) }, "grantee_principal");
    await bad({ name: "no spaces" }, "name");
    await bad({ constraints: { encryptionContextEquals: { a: "1" }, encryptionContextSubset: { b: "2" } } }, "constraints");
    const nine = Object.fromEntries([...Array(9).keys()].map((i) => [`k${i}`, "v"]));
    await bad({ constraints: { encryptionContextSubset: nine } }, "constraints.encryption_context_subset");
    await bad({ operations: ["Encrypt", "DescribeKey"], constraints: { encryptionContextSubset: { a: "1" } } }, "constraints");
    await bad({ retiringPrincipal: "bad\nline" }, "retiring_principal");
    // bob may not create grants on alice's key (kms:CreateGrant), whatever he asks for.
    await expectDenied(bob.createGrant({ keyId, granteePrincipal: BOB, operations: ["Encrypt"] }), denial(keyId, "kms:CreateGrant"));
    expect((await alice.listGrants({ keyId })).grants).toEqual([]);
  });
});

describe("a fresh grant on another replica", () => {
  it("is usable at once with its token, before that replica's cache knows it, and not after it is retired", async () => {
    const keyId = await newKey();
    // The stale replica caches the key and bob's (absent) grants for a minute.
    await expectDenied(bobOnStale.encrypt({ keyId, plaintext }), denial(keyId));
    const { grantId, grantToken } = await alice.createGrant({ keyId, granteePrincipal: BOB, operations: ["Encrypt"], retiringPrincipal: CAROL });
    await expectDenied(bobOnStale.encrypt({ keyId, plaintext }), denial(keyId));
    expect((await bobOnStale.encrypt({ keyId, plaintext, grantTokens: ["kmsgt1.junk", grantToken] })).keyId).toBe(keyId);
    const { events } = await auditor.listAuditEvents({ keyId, principal: BOB });
    expect(events.at(-1)!.grantId).toBe(grantId);

    await carol.retireGrant({ grantToken });
    // The token is read from Postgres each time: the retired grant is gone there.
    await expectDenied(bobOnStale.encrypt({ keyId, plaintext, grantTokens: [grantToken] }), denial(keyId));
  });
});

describe("a key's destruction", () => {
  it("takes its grants with it", async () => {
    const keyId = await newKey();
    const { grantId, grantToken } = await alice.createGrant({ keyId, granteePrincipal: BOB, operations: ["Encrypt"], retiringPrincipal: CAROL });
    await alice.scheduleKeyDeletion({ keyId, pendingWindowInDays: 7 });
    // CreateGrant on a key pending deletion is refused.
    const pending = await grpcError(alice.createGrant({ keyId, granteePrincipal: CAROL, operations: ["Encrypt"] }));
    expect([pending.code, errorCode(pending.metadata)]).toEqual([status.FAILED_PRECONDITION, "Rejected.PendingDeletion"]);
    // The window ends now (by hand: the test cannot wait seven days); the deletion job (every 50 ms) destroys it.
    const sql = postgres(stack.db.url, { max: 1, onnotice: () => {} });
    try {
      await sql`UPDATE keys SET delete_time = now() - interval '1 second' WHERE key_id = ${keyId}`;
      let gone = false;
      for (let i = 0; i < 400 && !gone; i++) {
        gone = (await sql`SELECT 1 FROM key_tombstones WHERE key_id = ${keyId}`).length > 0;
        if (!gone) await new Promise((r) => setTimeout(r, 25));
      }
      expect(gone).toBe(true);
      expect(await sql`SELECT grant_id FROM grants WHERE key_id = ${keyId}`).toHaveLength(0);
    } finally {
      await sql.end();
    }
    expect((await carol.listRetirableGrants({})).grants.map((g) => g.grantId)).not.toContain(grantId);
    await expectDenied(carol.retireGrant({ grantToken }), `kms:RetireGrant of this grant is not allowed for ${CAROL}`);
    await expectDenied(bob.encrypt({ keyId, plaintext, grantTokens: [grantToken] }), denial(keyId));
  });
});
