// Dry runs (docs/grants.md#dry-runs) through the real processes: every RPC that takes dry_run, for a
// caller the key policy allows (the answer: FAILED_PRECONDITION, DryRunOperation, and nothing else), one
// it does not (PERMISSION_DENIED, as the real call) and a disabled key (Rejected.Disabled, as the real
// call). Nothing changes: an imported key's encryption budget is untouched by dry runs, no grant is made
// or removed, and the only trace is each call's audit row, marked as a dry run.
import { constants, generateKeyPairSync, publicEncrypt, randomBytes } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { kmsResources } from "@kms/proto";
import { errorCode, grpcError, startStack } from "../harness";
import type { KmsClient, Stack } from "../harness";
import { principalPki } from "../principal-fixtures";

jest.setTimeout(180_000);

const { KeyAgreementAlgorithm, KeySpec, KeyUsage, Origin, ProtectionLevel, SigningAlgorithm, EncryptionAlgorithm, WrappingAlgorithm, WrappingKeySpec } = kmsResources;
const ALICE = "spiffe://example.org/ns/apps/sa/alice";
const BOB = "spiffe://example.org/ns/apps/sa/bob";
const AUDITOR = "spiffe://example.org/ns/kms/sa/auditor";
const LIMIT = 3;
const DRY_RUN_MESSAGE = "dry run: the request would have succeeded (nothing was done)";

const callers = principalPki("dry-run-clients", { alice: ALICE, bob: BOB, auditor: AUDITOR });

let stack: Stack;
let alice: KmsClient;
let bob: KmsClient;
let auditor: KmsClient;

beforeAll(async () => {
  stack = await startStack({ env: { KMS_IMPORTED_KEY_MAX_ENCRYPTIONS: String(LIMIT) } });
  const replica = await stack.startReplica({ ...callers.tlsEnv, KMS_CREATORS: ALICE, KMS_ADMINS: "", KMS_AUDITORS: AUDITOR });
  replica.client.close();
  alice = callers.client(replica.api.address, "alice");
  bob = callers.client(replica.api.address, "bob");
  auditor = callers.client(replica.api.address, "auditor");
});
afterAll(async () => {
  callers.close();
  await stack?.stop();
});

interface Keys {
  aes: string;
  sign: string;
  rsa: string;
  hmac: string;
  ecdh: string;
}
interface Inputs {
  blob: Uint8Array;
  rsaBlob: Uint8Array;
  signature: Uint8Array;
  mac: Uint8Array;
}

const digest = randomBytes(32);
const message = Buffer.from("message");
const context = { app: "dry" };
/** A peer's public key for DeriveSharedSecret (DER SPKI, P-256). */
const peerPublicKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "der" });

/** Each RPC that takes dry_run, as a dry run on the keys given (the grant RPCs are tested on their own). */
function calls(c: KmsClient, k: Keys, i: Inputs): [string, () => Promise<unknown>][] {
  const dryRun = true;
  return [
    ["Encrypt", () => c.encrypt({ keyId: k.aes, plaintext: message, encryptionContext: context, dryRun })],
    ["Decrypt", () => c.decrypt({ ciphertextBlob: i.blob, encryptionContext: context, dryRun })],
    ["ReEncrypt", () => c.reEncrypt({ ciphertextBlob: i.blob, sourceEncryptionContext: context, destinationKeyId: k.aes, dryRun })],
    ["GenerateDataKey", () => c.generateDataKey({ keyId: k.aes, numberOfBytes: 32, dryRun })],
    ["GenerateDataKeyWithoutPlaintext", () => c.generateDataKeyWithoutPlaintext({ keyId: k.aes, numberOfBytes: 32, dryRun })],
    ["GenerateDataKeyPair", () => c.generateDataKeyPair({ keyId: k.aes, keyPairSpec: KeySpec.EC_P256, dryRun })],
    ["GenerateDataKeyPairWithoutPlaintext", () => c.generateDataKeyPairWithoutPlaintext({ keyId: k.aes, keyPairSpec: KeySpec.RSA_2048, dryRun })],
    ["AsymmetricSign", () => c.asymmetricSign({ keyId: k.sign, algorithm: SigningAlgorithm.RSA_PSS_SHA_256, input: { case: "digest", value: digest }, dryRun })],
    [
      "AsymmetricVerify",
      () => c.asymmetricVerify({ keyId: k.sign, algorithm: SigningAlgorithm.RSA_PSS_SHA_256, input: { case: "digest", value: digest }, value: i.signature, dryRun }),
    ],
    ["AsymmetricEncrypt", () => c.asymmetricEncrypt({ keyId: k.rsa, algorithm: EncryptionAlgorithm.RSAES_OAEP_SHA_256, plaintext: message, dryRun })],
    ["AsymmetricDecrypt", () => c.asymmetricDecrypt({ keyId: k.rsa, algorithm: EncryptionAlgorithm.RSAES_OAEP_SHA_256, ciphertextBlob: i.rsaBlob, dryRun })],
    ["GenerateMac", () => c.generateMac({ keyId: k.hmac, message, dryRun })],
    ["VerifyMac", () => c.verifyMac({ keyId: k.hmac, message, mac: i.mac, dryRun })],
    ["DeriveSharedSecret", () => c.deriveSharedSecret({ keyId: k.ecdh, keyAgreementAlgorithm: KeyAgreementAlgorithm.ECDH, publicKey: peerPublicKey, dryRun })],
  ];
}

async function outcomes(list: [string, () => Promise<unknown>][]): Promise<[string, number, string | undefined, string][]> {
  const out: [string, number, string | undefined, string][] = [];
  for (const [name, call] of list) {
    const err = await grpcError(call());
    out.push([name, err.code, errorCode(err.metadata), err.details]);
  }
  return out;
}

async function setUp(): Promise<{ keys: Keys; inputs: Inputs }> {
  const create = async (keySpec: number, keyUsage: number) => (await alice.createKey({ keySpec, keyUsage })).keyMetadata!.keyId;
  const keys = {
    aes: await create(KeySpec.AES_256, KeyUsage.ENCRYPT_DECRYPT),
    sign: await create(KeySpec.RSA_2048, KeyUsage.SIGN_VERIFY),
    rsa: await create(KeySpec.RSA_2048, KeyUsage.ENCRYPT_DECRYPT),
    hmac: await create(KeySpec.HMAC_SHA256, KeyUsage.GENERATE_VERIFY_MAC),
    ecdh: await create(KeySpec.EC_P256, KeyUsage.KEY_AGREEMENT),
  };
  const inputs = {
    blob: (await alice.encrypt({ keyId: keys.aes, plaintext: message, encryptionContext: context })).ciphertextBlob,
    rsaBlob: (await alice.asymmetricEncrypt({ keyId: keys.rsa, algorithm: EncryptionAlgorithm.RSAES_OAEP_SHA_256, plaintext: message })).ciphertextBlob,
    signature: (await alice.asymmetricSign({ keyId: keys.sign, algorithm: SigningAlgorithm.RSA_PSS_SHA_256, input: { case: "digest", value: digest } })).value,
    mac: (await alice.generateMac({ keyId: keys.hmac, message })).mac,
  };
  return { keys, inputs };
}

describe("dry_run on every cryptographic RPC", () => {
  it("answers DryRunOperation when allowed, the real refusal when not, Rejected.Disabled on a disabled key; audited as dry runs", async () => {
    const { keys, inputs } = await setUp();
    const names = calls(alice, keys, inputs).map(([n]) => n);

    const allowed = await outcomes(calls(alice, keys, inputs));
    expect(allowed).toEqual(names.map((n) => [n, status.FAILED_PRECONDITION, "DryRunOperation", DRY_RUN_MESSAGE]));

    const refused = await outcomes(calls(bob, keys, inputs));
    expect(refused.map(([n, code, ec]) => [n, code, ec])).toEqual(names.map((n) => [n, status.PERMISSION_DENIED, "Forbidden.NoPermission"]));
    // The same words the real call gets.
    const real = await grpcError(bob.encrypt({ keyId: keys.aes, plaintext: message, encryptionContext: context }));
    expect(refused[0]![3]).toBe(real.details);

    // A bad input is refused as the real call would (the checks run).
    const short = await grpcError(alice.asymmetricSign({ keyId: keys.sign, algorithm: SigningAlgorithm.RSA_PSS_SHA_256, input: { case: "digest", value: digest.subarray(1) }, dryRun: true }));
    expect(short.code).toBe(status.INVALID_ARGUMENT);

    for (const keyId of Object.values(keys)) await alice.disableKey({ keyId });
    const disabled = await outcomes(calls(alice, keys, inputs));
    expect(disabled.map(([n, code, ec]) => [n, code, ec])).toEqual(names.map((n) => [n, status.FAILED_PRECONDITION, "Rejected.Disabled"]));

    // Each dry run left its row, marked, and nothing else: alice's rows on the AES key after set-up are
    // exactly her dry runs on it, then the DisableKey.
    const { events } = await auditor.listAuditEvents({ keyId: keys.aes, principal: ALICE, pageSize: 1000 });
    const after = events.slice(events.findIndex((e) => e.operation === "Encrypt" && e.dryRun));
    const onAes = names.filter((n) => n.startsWith("Encrypt") || n.startsWith("Decrypt") || n.startsWith("ReEncrypt") || n.startsWith("GenerateDataKey"));
    expect(after.map((e) => [e.operation, e.dryRun, e.errorCode])).toEqual([
      ...onAes.map((n) => [n, true, "DryRunOperation"]),
      ["DisableKey", false, ""],
      ...onAes.map((n) => [n, true, "Rejected.Disabled"]),
    ]);
    const bobs = await auditor.listAuditEvents({ keyId: keys.aes, principal: BOB });
    expect(bobs.events.map((e) => [e.dryRun, e.resultCode])).toEqual([...onAes.map(() => [true, "PERMISSION_DENIED"]), [false, "PERMISSION_DENIED"]]);
    expect((await auditor.verifyAuditLog({})).ok).toBe(true);
  });

  it("does not count toward an imported key's encryption budget; a batch item's dry run is that item's", async () => {
    const created = (await alice.createKey({ origin: Origin.EXTERNAL, protectionLevel: ProtectionLevel.SOFTWARE })).keyMetadata!;
    const keyId = created.keyId;
    const params = await alice.getParametersForImport({ keyId, wrappingAlgorithm: WrappingAlgorithm.RSAES_OAEP_SHA_256, wrappingKeySpec: WrappingKeySpec.RSA_2048 });
    const encryptedKeyMaterial = publicEncrypt({ key: params.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, randomBytes(32));
    await alice.importKeyMaterial({ keyId, importToken: params.importToken, encryptedKeyMaterial });

    for (let i = 0; i < 2 * LIMIT; i++) {
      const err = await grpcError(alice.encrypt({ keyId, plaintext: message, dryRun: true }));
      expect(errorCode(err.metadata)).toBe("DryRunOperation");
      expect(errorCode((await grpcError(alice.generateDataKey({ keyId, numberOfBytes: 16, dryRun: true }))).metadata)).toBe("DryRunOperation");
    }
    const batch = await alice.batchEncrypt({ items: [{ keyId, plaintext: message, dryRun: true }, { keyId, plaintext: message }] });
    expect(batch.results.map((r) => [r.status!.errorCode, (r.response?.ciphertextBlob.length ?? 0) > 0])).toEqual([
      ["DryRunOperation", false],
      ["", true],
    ]);
    // The budget is whole but for the batch's real item: LIMIT - 1 real encryptions, then the refusal,
    // which a dry run now reports too.
    for (let i = 1; i < LIMIT; i++) await alice.encrypt({ keyId, plaintext: message });
    for (const dryRun of [true, false]) {
      expect(errorCode((await grpcError(alice.encrypt({ keyId, plaintext: message, dryRun }))).metadata)).toBe("Rejected.EncryptionLimit");
    }
  });
});

describe("dry_run on the grant RPCs", () => {
  it("checks CreateGrant, RetireGrant and RevokeGrant without making or removing a grant", async () => {
    const keyId = (await alice.createKey({})).keyMetadata!.keyId;
    const dry = async (call: Promise<unknown>) => {
      const err = await grpcError(call);
      return [err.code, errorCode(err.metadata)];
    };
    const grant = { keyId, granteePrincipal: BOB, operations: ["Encrypt"], name: "dry" };
    expect(await dry(alice.createGrant({ ...grant, dryRun: true }))).toEqual([status.FAILED_PRECONDITION, "DryRunOperation"]);
    expect((await alice.listGrants({ keyId })).grants).toEqual([]);
    expect(await dry(bob.createGrant({ ...grant, dryRun: true }))).toEqual([status.PERMISSION_DENIED, "Forbidden.NoPermission"]);
    expect(await dry(bob.encrypt({ keyId, plaintext: message }))).toEqual([status.PERMISSION_DENIED, "Forbidden.NoPermission"]);

    const { grantId, grantToken } = await alice.createGrant(grant);
    // The same name with other terms: the dry run says what the real call would.
    expect(await dry(alice.createGrant({ ...grant, operations: ["Decrypt"], dryRun: true }))).toEqual([status.ALREADY_EXISTS, "AlreadyExists.Grant"]);
    expect(await dry(alice.revokeGrant({ keyId, grantId, dryRun: true }))).toEqual([status.FAILED_PRECONDITION, "DryRunOperation"]);
    expect(await dry(alice.retireGrant({ grantToken, dryRun: true }))).toEqual([status.FAILED_PRECONDITION, "DryRunOperation"]);
    expect(await dry(bob.retireGrant({ grantToken, dryRun: true }))).toEqual([status.PERMISSION_DENIED, "Forbidden.NoPermission"]);
    expect((await alice.listGrants({ keyId })).grants.map((g) => g.grantId)).toEqual([grantId]);
    expect((await bob.encrypt({ keyId, plaintext: message })).keyId).toBe(keyId);

    const rows = (await auditor.listAuditEvents({ keyId })).events.filter((e) => e.dryRun);
    expect(rows.map((e) => [e.operation, e.principal, e.errorCode])).toEqual([
      ["CreateGrant", ALICE, "DryRunOperation"],
      ["CreateGrant", BOB, "Forbidden.NoPermission"],
      ["CreateGrant", ALICE, "AlreadyExists.Grant"],
      ["RevokeGrant", ALICE, "DryRunOperation"],
      ["RetireGrant", ALICE, "DryRunOperation"],
      ["RetireGrant", BOB, "Forbidden.NoPermission"],
    ]);
  });
});
