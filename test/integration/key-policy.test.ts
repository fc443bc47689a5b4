// Key policies under attack, through the real processes: wildcard patterns built to backtrack (issue 15,
// finding 2) and callers without permission probing SetKeyPolicy and CreateKey (finding 11). Callers
// authenticate with client certificates whose URI SANs are their principals.
import { readFileSync } from "node:fs";
import { credentials, status } from "@grpc/grpc-js";
import { createPromiseClient, kms } from "@kms/proto";
import { errorCode, grpcError, startStack } from "../harness";
import type { KmsClient, Stack } from "../harness";
import { issue, makeCa } from "../certs";

const ALICE = "spiffe://example.org/ns/apps/sa/alice";
const BOB = "spiffe://example.org/ns/apps/sa/bob";
const CAROL = "spiffe://example.org/ns/apps/sa/carol";

const pki = makeCa("policy-clients");
const server = issue(pki, "server", { cn: "kms", sans: "IP:127.0.0.1,DNS:localhost" });
const certs = {
  alice: issue(pki, "alice", { sans: `URI:${ALICE}` }),
  bob: issue(pki, "bob", { sans: `URI:${BOB}` }),
  carol: issue(pki, "carol", { sans: `URI:${CAROL}` }),
};

let stack: Stack;
const clients: KmsClient[] = [];
let alice: KmsClient;
let bob: KmsClient;
let carol: KmsClient;

const doc = (statements: unknown[]) => JSON.stringify({ Version: "1", Statement: statements });
const owner = { Sid: "owner", Effect: "Allow", Principal: [ALICE], Action: "kms:*", Resource: "*" };
/** The most `*` a pattern may hold, built so that a backtracking matcher tries every split of the value. */
const PATHOLOGICAL = "*a".repeat(15) + "*b";

beforeAll(async () => {
  stack = await startStack();
  const replica = await stack.startReplica({
    KMS_TLS_CERT: server.cert,
    KMS_TLS_KEY: server.key,
    KMS_TLS_CLIENT_CA: pki.caCert,
    KMS_CREATORS: `${ALICE},${BOB}`,
    KMS_ADMINS: "",
  });
  replica.client.close();
  const as = (who: { cert: string; key: string }) => {
    const creds = credentials.createSsl(readFileSync(pki.caCert), readFileSync(who.key), readFileSync(who.cert));
    const c = createPromiseClient(kms.KeyManagementService, replica.api.address, creds);
    clients.push(c);
    return c;
  };
  alice = as(certs.alice);
  bob = as(certs.bob);
  carol = as(certs.carol);
});
afterAll(async () => {
  clients.forEach((c) => c.close());
  await stack?.stop();
});

describe("wildcards that would backtrack", () => {
  it("evaluates the most wildcards a pattern may hold against an 8 KB context while another caller is served", async () => {
    const keyId = (await alice.createKey({})).keyMetadata!.keyId;
    const bobsKey = (await bob.createKey({})).keyMetadata!.keyId;
    const policy = doc([
      owner,
      { Sid: "carol-by-pattern", Effect: "Allow", Principal: [CAROL], Action: "kms:Encrypt", Resource: "*",
        Condition: { StringLike: { "kms:EncryptionContext:t": PATHOLOGICAL } } },
    ]);
    expect((await alice.setKeyPolicy({ keyId, policy })).policy).toBe(policy);

    // Before the fix, `^.*a.*a….*b$` over 8,191 a's never finished: kms-api's event loop froze and
    // bob's DescribeKey, sent while carol's Encrypt was being decided, never came back.
    const carolsCall = grpcError(carol.encrypt({ keyId, plaintext: Buffer.from("x"), encryptionContext: { t: "a".repeat(8191) } }));
    const bobsCall = bob.describeKey({ keyId: bobsKey });
    const [denied, described] = await Promise.all([carolsCall, bobsCall]);
    expect(denied.code).toBe(status.PERMISSION_DENIED);
    expect(denied.details).toBe(`kms:Encrypt on key ${keyId} is not allowed for ${CAROL}`);
    expect(described.keyMetadata!.keyId).toBe(bobsKey);

    // The pattern still means what it says.
    const allowed = await carol.encrypt({ keyId, plaintext: Buffer.from("x"), encryptionContext: { t: "a".repeat(8190) + "b" } });
    expect(allowed.keyId).toBe(keyId);
  });

  it("checks pathological action patterns against every action at once while another caller is served", async () => {
    const keyId = (await alice.createKey({})).keyMetadata!.keyId;
    const bobsKey = (await bob.createKey({})).keyMetadata!.keyId;
    // 16 `*?` pairs and an "l": only kms:ImportKeyMaterial (the 28th action) and kms:DeleteKeyMaterial
    // match. Before the fix, trying the 27 actions before it took about 10 s of backtracking for each
    // of the ten entries, and kms-api answered nobody meanwhile (bob's DescribeKey waited past the timeout).
    const materialActions = "kms:" + "*?".repeat(16) + "l";
    const policy = doc([owner, { Effect: "Allow", Principal: [BOB], Action: Array(10).fill(materialActions) }]);
    const [set, described] = await Promise.all([alice.setKeyPolicy({ keyId, policy }), bob.describeKey({ keyId: bobsKey })]);
    expect(set.policy).toBe(policy);
    expect(described.keyMetadata!.keyId).toBe(bobsKey);
    expect((await alice.getKeyPolicy({ keyId })).policy).toBe(policy);
    const notMaterial = await grpcError(bob.describeKey({ keyId }));
    expect(notMaterial.details).toBe(`kms:DescribeKey on key ${keyId} is not allowed for ${BOB}`);

    // One that matches no action at all is refused as such, at once.
    const none = "kms:" + "*?".repeat(16) + "#";
    const refused = await grpcError(alice.setKeyPolicy({ keyId, policy: doc([owner, { Effect: "Allow", Principal: [BOB], Action: none }]) }));
    expect(refused.code).toBe(status.INVALID_ARGUMENT);
    expect(errorCode(refused.metadata)).toBe("InvalidParameter");
    expect(refused.details).toBe(`policy: Statement[1].Action[0]: ${JSON.stringify(none)} matches no kms action`);
  });

  it("refuses patterns over the caps, naming them, in CreateKey and SetKeyPolicy", async () => {
    const tooManyStars = doc([
      owner,
      { Effect: "Allow", Principal: [CAROL], Action: "kms:Decrypt", Condition: { StringLike: { "kms:EncryptionContext:t": "*a" + PATHOLOGICAL } } },
    ]);
    const created = await grpcError(alice.createKey({ policy: tooManyStars }));
    expect(created.code).toBe(status.INVALID_ARGUMENT);
    expect(errorCode(created.metadata)).toBe("InvalidParameter");
    expect(created.details).toBe('policy: Statement[1].Condition.StringLike.kms:EncryptionContext:t[0]: must have at most 16 "*" wildcards, got 17');

    const keyId = (await alice.createKey({})).keyMetadata!.keyId;
    const tooLong = doc([{ ...owner, Action: ["kms:*", "kms:" + "?".repeat(253)] }]);
    const set = await grpcError(alice.setKeyPolicy({ keyId, policy: tooLong }));
    expect(set.code).toBe(status.INVALID_ARGUMENT);
    expect(set.details).toBe("policy: Statement[0].Action[1]: must be at most 256 characters, got 257");
    expect((await alice.getKeyPolicy({ keyId })).policy).not.toBe(tooLong);
  });
});

describe("a caller without permission learns nothing but PERMISSION_DENIED", () => {
  it("SetKeyPolicy authorizes before it reads the document or runs the lockout check", async () => {
    const keyId = (await alice.createKey({})).keyMetadata!.keyId;
    const before = (await alice.getKeyPolicy({ keyId })).policy;
    const documents = [
      "{", // not JSON: before, INVALID_ARGUMENT "policy: is not valid JSON"
      doc([{ Effect: "Allow", Principal: [CAROL], Action: "kms:*" }]), // locks bob out: before, "would lock out …"
      doc([{ Effect: "Allow", Principal: [BOB], Action: "kms:" + "*?".repeat(16) + "#" }]), // before: parsed for minutes
      doc([{ Effect: "Allow", Principal: [BOB], Action: "kms:*" }]), // a valid takeover
    ];
    for (const policy of documents) {
      const err = await grpcError(bob.setKeyPolicy({ keyId, policy }));
      expect([err.code, errorCode(err.metadata), err.details]).toEqual([
        status.PERMISSION_DENIED,
        "Forbidden.NoPermission",
        `kms:SetKeyPolicy on key ${keyId} is not allowed for ${BOB}`,
      ]);
    }
    expect((await alice.getKeyPolicy({ keyId })).policy).toBe(before);
    // The key's owner still gets the document checked.
    const bad = await grpcError(alice.setKeyPolicy({ keyId, policy: "{" }));
    expect([bad.code, bad.details]).toEqual([status.INVALID_ARGUMENT, "policy: is not valid JSON"]);
  });

  it("CreateKey authorizes before it validates the request", async () => {
    const requests = [
      { description: "x".repeat(10_000) }, // before: INVALID_ARGUMENT naming description
      { policy: "{" }, // already refused before the document was read
      { tags: { "": "v" } },
    ];
    for (const request of requests) {
      const err = await grpcError(carol.createKey(request));
      expect([err.code, errorCode(err.metadata), err.details]).toEqual([
        status.PERMISSION_DENIED,
        "Forbidden.NoPermission",
        `CreateKey is not allowed for ${CAROL} (KMS_CREATORS)`,
      ]);
    }
  });
});
