// The AWS SDK for JavaScript v3 (@aws-sdk/client-kms), unchanged, against the real stack's AWS-compatible
// listener: every operation of issue 18's list, with AWS's request and response shapes. Ciphertexts cross
// between the gRPC and AWS fronts. Errors and authentication: aws-auth.test.ts.
import { constants, createHash, createPublicKey, publicEncrypt, randomBytes, verify } from "node:crypto";
import * as aws from "@aws-sdk/client-kms";
import type { KMSClient } from "@aws-sdk/client-kms";
import { startStack } from "../harness";
import type { Stack } from "../harness";
import { awsError, kmsClient } from "../aws-sdk-client";

jest.setTimeout(180_000);

let stack: Stack;
let kms: KMSClient;

beforeAll(async () => {
  stack = await startStack({ aws: true });
  kms = kmsClient(stack.aws!.access(), { maxAttempts: 1 });
});
afterAll(async () => {
  kms?.destroy();
  await stack?.stop();
});

const arn = (keyId: string) => `arn:aws:kms:us-east-1:000000000000:key/${keyId}`;
const text = (bytes: Uint8Array | undefined) => Buffer.from(bytes ?? []).toString();

async function symmetricKey(description = "aws-sdk test"): Promise<string> {
  const { KeyMetadata } = await kms.send(new aws.CreateKeyCommand({ Description: description }));
  return KeyMetadata!.KeyId!;
}

describe("keys and their life", () => {
  it("CreateKey and DescribeKey answer AWS's KeyMetadata, by key id, key ARN, alias and alias ARN", async () => {
    const created = await kms.send(new aws.CreateKeyCommand({ Description: "orders", Tags: [{ TagKey: "team", TagValue: "payments" }] }));
    const k = created.KeyMetadata!;
    expect(k).toMatchObject({
      AWSAccountId: "000000000000",
      Arn: arn(k.KeyId!),
      Enabled: true,
      Description: "orders",
      KeyUsage: "ENCRYPT_DECRYPT",
      KeyState: "Enabled",
      Origin: "AWS_KMS",
      KeyManager: "CUSTOMER",
      KeySpec: "SYMMETRIC_DEFAULT",
      EncryptionAlgorithms: ["SYMMETRIC_DEFAULT"],
    });
    expect(k.CreationDate).toBeInstanceOf(Date);
    await kms.send(new aws.CreateAliasCommand({ AliasName: "alias/orders", TargetKeyId: k.KeyId }));
    for (const KeyId of [k.KeyId!, k.Arn!, "alias/orders", "arn:aws:kms:us-east-1:000000000000:alias/orders"]) {
      expect((await kms.send(new aws.DescribeKeyCommand({ KeyId }))).KeyMetadata!.KeyId).toBe(k.KeyId);
    }
    expect((await awsError(kms.send(new aws.DescribeKeyCommand({ KeyId: "alias/none" })))).name).toBe("NotFoundException");
    expect((await awsError(kms.send(new aws.DescribeKeyCommand({ KeyId: "arn:aws:kms:eu-west-1:000000000000:key/" + k.KeyId })))).name).toBe("NotFoundException");
  });

  it("ListKeys pages with Limit and Marker", async () => {
    await Promise.all([symmetricKey(), symmetricKey(), symmetricKey()]);
    const seen = new Set<string>();
    let Marker: string | undefined;
    let pages = 0;
    do {
      const page = await kms.send(new aws.ListKeysCommand({ Limit: 1, ...(Marker ? { Marker } : {}) }));
      for (const key of page.Keys ?? []) {
        expect(key.KeyArn).toBe(arn(key.KeyId!));
        seen.add(key.KeyId!);
      }
      Marker = page.Truncated ? page.NextMarker : undefined;
      pages++;
    } while (Marker);
    expect(pages).toBeGreaterThanOrEqual(3);
    expect(seen.size).toBeGreaterThanOrEqual(3);
  });

  it("UpdateKeyDescription, DisableKey, EnableKey, ScheduleKeyDeletion and CancelKeyDeletion", async () => {
    const keyId = await symmetricKey();
    await kms.send(new aws.UpdateKeyDescriptionCommand({ KeyId: keyId, Description: "renamed" }));
    expect((await kms.send(new aws.DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata!.Description).toBe("renamed");
    await kms.send(new aws.DisableKeyCommand({ KeyId: keyId }));
    expect((await awsError(kms.send(new aws.EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from("x") })))).name).toBe("DisabledException");
    await kms.send(new aws.EnableKeyCommand({ KeyId: keyId }));
    const scheduled = await kms.send(new aws.ScheduleKeyDeletionCommand({ KeyId: keyId, PendingWindowInDays: 7 }));
    expect(scheduled).toMatchObject({ KeyId: arn(keyId), KeyState: "PendingDeletion", PendingWindowInDays: 7 });
    expect(scheduled.DeletionDate!.getTime()).toBeGreaterThan(Date.now() + 6 * 86_400_000);
    expect((await awsError(kms.send(new aws.EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from("x") })))).name).toBe("KMSInvalidStateException");
    expect((await kms.send(new aws.CancelKeyDeletionCommand({ KeyId: keyId }))).KeyId).toBe(arn(keyId));
    expect((await kms.send(new aws.DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata).toMatchObject({ KeyState: "Disabled", Enabled: false });
  });

  it("EnableKeyRotation, GetKeyRotationStatus, RotateKeyOnDemand and DisableKeyRotation", async () => {
    const keyId = await symmetricKey();
    expect((await kms.send(new aws.GetKeyRotationStatusCommand({ KeyId: keyId }))).KeyRotationEnabled).toBe(false);
    const before = await kms.send(new aws.EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from("before rotation") }));
    await kms.send(new aws.EnableKeyRotationCommand({ KeyId: keyId, RotationPeriodInDays: 90 }));
    const on = await kms.send(new aws.GetKeyRotationStatusCommand({ KeyId: keyId }));
    expect(on).toMatchObject({ KeyRotationEnabled: true, KeyId: arn(keyId), RotationPeriodInDays: 90 });
    expect(on.NextRotationDate!.getTime()).toBeGreaterThan(Date.now() + 89 * 86_400_000);
    expect((await kms.send(new aws.RotateKeyOnDemandCommand({ KeyId: keyId }))).KeyId).toBe(arn(keyId));
    const after = await kms.send(new aws.EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from("after") }));
    expect(Buffer.from(after.CiphertextBlob!).subarray(1, 17)).not.toEqual(Buffer.from(before.CiphertextBlob!).subarray(1, 17)); // another version
    expect(text((await kms.send(new aws.DecryptCommand({ CiphertextBlob: before.CiphertextBlob }))).Plaintext)).toBe("before rotation");
    await kms.send(new aws.DisableKeyRotationCommand({ KeyId: keyId }));
    expect((await kms.send(new aws.GetKeyRotationStatusCommand({ KeyId: keyId }))).KeyRotationEnabled).toBe(false);
  });
});

describe("symmetric cryptography", () => {
  it("Encrypt and Decrypt, with and without KeyId; another key or context is refused", async () => {
    const keyId = await symmetricKey();
    const other = await symmetricKey();
    const EncryptionContext = { tenant: "acme" };
    const e = await kms.send(new aws.EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from("secret"), EncryptionContext }));
    expect(e).toMatchObject({ KeyId: arn(keyId), EncryptionAlgorithm: "SYMMETRIC_DEFAULT" });
    const d = await kms.send(new aws.DecryptCommand({ CiphertextBlob: e.CiphertextBlob, EncryptionContext }));
    expect(d).toMatchObject({ KeyId: arn(keyId), EncryptionAlgorithm: "SYMMETRIC_DEFAULT" });
    expect(text(d.Plaintext)).toBe("secret");
    expect(text((await kms.send(new aws.DecryptCommand({ CiphertextBlob: e.CiphertextBlob, EncryptionContext, KeyId: arn(keyId) }))).Plaintext)).toBe("secret");
    expect((await awsError(kms.send(new aws.DecryptCommand({ CiphertextBlob: e.CiphertextBlob, EncryptionContext, KeyId: other })))).name).toBe("IncorrectKeyException");
    expect((await awsError(kms.send(new aws.DecryptCommand({ CiphertextBlob: e.CiphertextBlob, EncryptionContext: { tenant: "other" } })))).name).toBe(
      "InvalidCiphertextException",
    );
  });

  it("ReEncrypt moves a ciphertext to another key; a wrong SourceKeyId is IncorrectKeyException", async () => {
    const [from, to] = await Promise.all([symmetricKey(), symmetricKey()]);
    const e = await kms.send(new aws.EncryptCommand({ KeyId: from, Plaintext: Buffer.from("moving"), EncryptionContext: { a: "1" } }));
    const r = await kms.send(
      new aws.ReEncryptCommand({ CiphertextBlob: e.CiphertextBlob, SourceEncryptionContext: { a: "1" }, DestinationKeyId: to, DestinationEncryptionContext: { b: "2" } }),
    );
    expect(r).toMatchObject({ SourceKeyId: arn(from), KeyId: arn(to), SourceEncryptionAlgorithm: "SYMMETRIC_DEFAULT", DestinationEncryptionAlgorithm: "SYMMETRIC_DEFAULT" });
    const d = await kms.send(new aws.DecryptCommand({ CiphertextBlob: r.CiphertextBlob, EncryptionContext: { b: "2" } }));
    expect([d.KeyId, text(d.Plaintext)]).toEqual([arn(to), "moving"]);
    const wrong = kms.send(new aws.ReEncryptCommand({ CiphertextBlob: e.CiphertextBlob, SourceEncryptionContext: { a: "1" }, SourceKeyId: to, DestinationKeyId: to }));
    expect((await awsError(wrong)).name).toBe("IncorrectKeyException");
  });

  it("GenerateDataKey, GenerateDataKeyWithoutPlaintext and GenerateRandom", async () => {
    const keyId = await symmetricKey();
    const dk = await kms.send(new aws.GenerateDataKeyCommand({ KeyId: keyId, KeySpec: "AES_256", EncryptionContext: { f: "1" } }));
    expect([dk.KeyId, dk.Plaintext!.length]).toEqual([arn(keyId), 32]);
    const back = await kms.send(new aws.DecryptCommand({ CiphertextBlob: dk.CiphertextBlob, EncryptionContext: { f: "1" } }));
    expect(Buffer.from(back.Plaintext!)).toEqual(Buffer.from(dk.Plaintext!));
    expect((await kms.send(new aws.GenerateDataKeyCommand({ KeyId: keyId, NumberOfBytes: 64 }))).Plaintext!.length).toBe(64);
    const sealed = await kms.send(new aws.GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyId, KeySpec: "AES_128" }));
    expect([sealed.KeyId, "Plaintext" in sealed]).toEqual([arn(keyId), false]);
    expect((await kms.send(new aws.DecryptCommand({ CiphertextBlob: sealed.CiphertextBlob }))).Plaintext!.length).toBe(16);
    expect((await kms.send(new aws.GenerateRandomCommand({ NumberOfBytes: 48 }))).Plaintext!.length).toBe(48);
  });

  it("a ciphertext made through gRPC decrypts through AWS, and the other way round", async () => {
    const keyId = await symmetricKey();
    const viaGrpc = await stack.client.encrypt({ keyId, plaintext: Buffer.from("from gRPC"), encryptionContext: { x: "y" } });
    const d = await kms.send(new aws.DecryptCommand({ CiphertextBlob: viaGrpc.ciphertextBlob, EncryptionContext: { x: "y" } }));
    expect(text(d.Plaintext)).toBe("from gRPC");
    const viaAws = await kms.send(new aws.EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from("from AWS"), EncryptionContext: { x: "y" } }));
    const back = await stack.client.decrypt({ ciphertextBlob: viaAws.CiphertextBlob!, encryptionContext: { x: "y" } });
    expect([back.keyId, Buffer.from(back.plaintext).toString()]).toEqual([keyId, "from AWS"]);
  });
});

describe("asymmetric keys and MACs", () => {
  it("Sign and Verify (RAW and DIGEST) with an ECC_NIST_P256 key; GetPublicKey's DER verifies them", async () => {
    const key = (await kms.send(new aws.CreateKeyCommand({ KeySpec: "ECC_NIST_P256", KeyUsage: "SIGN_VERIFY" }))).KeyMetadata!;
    expect(key).toMatchObject({ KeySpec: "ECC_NIST_P256", KeyUsage: "SIGN_VERIFY", SigningAlgorithms: ["ECDSA_SHA_256"] });
    const message = Buffer.from("sign me");
    const raw = await kms.send(new aws.SignCommand({ KeyId: key.KeyId, Message: message, MessageType: "RAW", SigningAlgorithm: "ECDSA_SHA_256" }));
    expect(raw).toMatchObject({ KeyId: arn(key.KeyId!), SigningAlgorithm: "ECDSA_SHA_256" });
    const digest = createHash("sha256").update(message).digest();
    const fromDigest = await kms.send(new aws.SignCommand({ KeyId: key.KeyId, Message: digest, MessageType: "DIGEST", SigningAlgorithm: "ECDSA_SHA_256" }));
    const pub = await kms.send(new aws.GetPublicKeyCommand({ KeyId: key.KeyId }));
    expect(pub).toMatchObject({ KeyId: arn(key.KeyId!), KeySpec: "ECC_NIST_P256", KeyUsage: "SIGN_VERIFY", SigningAlgorithms: ["ECDSA_SHA_256"] });
    const publicKey = createPublicKey({ key: Buffer.from(pub.PublicKey!), format: "der", type: "spki" });
    for (const s of [raw.Signature!, fromDigest.Signature!]) expect(verify("sha256", message, publicKey, Buffer.from(s))).toBe(true);
    const ok = await kms.send(new aws.VerifyCommand({ KeyId: key.KeyId, Message: digest, MessageType: "DIGEST", Signature: raw.Signature, SigningAlgorithm: "ECDSA_SHA_256" }));
    expect(ok.SignatureValid).toBe(true);
    const bad = kms.send(new aws.VerifyCommand({ KeyId: key.KeyId, Message: Buffer.from("other"), Signature: raw.Signature, SigningAlgorithm: "ECDSA_SHA_256" }));
    expect((await awsError(bad)).name).toBe("KMSInvalidSignatureException");
    const p521 = kms.send(new aws.SignCommand({ KeyId: key.KeyId, Message: message, SigningAlgorithm: "ECDSA_SHA_512" }));
    expect(await awsError(p521)).toMatchObject({ name: "UnsupportedOperationException", message: expect.stringContaining("ECDSA_SHA_512") });
  });

  it("Ed25519 (ECC_NIST_EDWARDS25519, ED25519_SHA_512) signs and verifies", async () => {
    const key = (await kms.send(new aws.CreateKeyCommand({ KeySpec: "ECC_NIST_EDWARDS25519", KeyUsage: "SIGN_VERIFY" }))).KeyMetadata!;
    const signed = await kms.send(new aws.SignCommand({ KeyId: key.KeyId, Message: Buffer.from("ed"), SigningAlgorithm: "ED25519_SHA_512" }));
    const pub = await kms.send(new aws.GetPublicKeyCommand({ KeyId: key.KeyId }));
    expect(verify(null, Buffer.from("ed"), createPublicKey({ key: Buffer.from(pub.PublicKey!), format: "der", type: "spki" }), Buffer.from(signed.Signature!))).toBe(true);
    const checked = await kms.send(new aws.VerifyCommand({ KeyId: key.KeyId, Message: Buffer.from("ed"), Signature: signed.Signature, SigningAlgorithm: "ED25519_SHA_512" }));
    expect(checked.SignatureValid).toBe(true);
  });

  it("RSA_2048 ENCRYPT_DECRYPT: Encrypt and Decrypt with RSAES_OAEP_SHA_256, the public key encrypts too", async () => {
    const key = (await kms.send(new aws.CreateKeyCommand({ KeySpec: "RSA_2048", KeyUsage: "ENCRYPT_DECRYPT" }))).KeyMetadata!;
    expect(key.EncryptionAlgorithms).toEqual(["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]);
    expect(key.SigningAlgorithms).toBeUndefined(); // an encryption key signs nothing (AWS lists none)
    const described = (await kms.send(new aws.DescribeKeyCommand({ KeyId: key.KeyId }))).KeyMetadata!;
    expect([described.EncryptionAlgorithms, described.SigningAlgorithms]).toEqual([["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"], undefined]);
    const e = await kms.send(new aws.EncryptCommand({ KeyId: key.KeyId, Plaintext: Buffer.from("rsa"), EncryptionAlgorithm: "RSAES_OAEP_SHA_256" }));
    expect(e.EncryptionAlgorithm).toBe("RSAES_OAEP_SHA_256");
    const d = await kms.send(new aws.DecryptCommand({ KeyId: key.KeyId, CiphertextBlob: e.CiphertextBlob, EncryptionAlgorithm: "RSAES_OAEP_SHA_256" }));
    expect(text(d.Plaintext)).toBe("rsa");
    const pub = await kms.send(new aws.GetPublicKeyCommand({ KeyId: key.KeyId }));
    expect(pub.EncryptionAlgorithms).toEqual(["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]);
    const local = publicEncrypt(
      { key: createPublicKey({ key: Buffer.from(pub.PublicKey!), format: "der", type: "spki" }), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
      Buffer.from("offline"),
    );
    const d2 = await kms.send(new aws.DecryptCommand({ KeyId: key.KeyId, CiphertextBlob: local, EncryptionAlgorithm: "RSAES_OAEP_SHA_256" }));
    expect(text(d2.Plaintext)).toBe("offline");
    expect((await awsError(kms.send(new aws.DecryptCommand({ CiphertextBlob: e.CiphertextBlob, EncryptionAlgorithm: "RSAES_OAEP_SHA_256" })))).name).toBe(
      "ValidationException",
    );
  });

  it("GenerateMac and VerifyMac; a wrong MAC or another algorithm than the key's is refused", async () => {
    const key = (await kms.send(new aws.CreateKeyCommand({ KeySpec: "HMAC_256", KeyUsage: "GENERATE_VERIFY_MAC" }))).KeyMetadata!;
    expect(key.MacAlgorithms).toEqual(["HMAC_SHA_256"]);
    const mac = await kms.send(new aws.GenerateMacCommand({ KeyId: key.KeyId, Message: Buffer.from("m"), MacAlgorithm: "HMAC_SHA_256" }));
    expect([mac.KeyId, mac.MacAlgorithm, mac.Mac!.length]).toEqual([arn(key.KeyId!), "HMAC_SHA_256", 32]);
    const ok = await kms.send(new aws.VerifyMacCommand({ KeyId: key.KeyId, Message: Buffer.from("m"), Mac: mac.Mac, MacAlgorithm: "HMAC_SHA_256" }));
    expect(ok.MacValid).toBe(true);
    const bad = kms.send(new aws.VerifyMacCommand({ KeyId: key.KeyId, Message: Buffer.from("n"), Mac: mac.Mac, MacAlgorithm: "HMAC_SHA_256" }));
    expect((await awsError(bad)).name).toBe("KMSInvalidMacException");
    const other = kms.send(new aws.GenerateMacCommand({ KeyId: key.KeyId, Message: Buffer.from("m"), MacAlgorithm: "HMAC_SHA_512" }));
    expect((await awsError(other)).name).toBe("InvalidKeyUsageException");
  });
});

describe("aliases, tags and key policies", () => {
  it("CreateAlias, ListAliases (all and by KeyId), UpdateAlias and DeleteAlias", async () => {
    const [a, b] = await Promise.all([symmetricKey(), symmetricKey()]);
    await kms.send(new aws.CreateAliasCommand({ AliasName: "alias/app/one", TargetKeyId: arn(a) }));
    expect((await awsError(kms.send(new aws.CreateAliasCommand({ AliasName: "alias/app/one", TargetKeyId: b })))).name).toBe("AlreadyExistsException");
    const all = await kms.send(new aws.ListAliasesCommand({}));
    const entry = all.Aliases!.find((x) => x.AliasName === "alias/app/one")!;
    expect(entry).toMatchObject({ AliasArn: "arn:aws:kms:us-east-1:000000000000:alias/app/one", TargetKeyId: a });
    expect(entry.CreationDate).toBeInstanceOf(Date);
    expect((await kms.send(new aws.ListAliasesCommand({ KeyId: a }))).Aliases!.map((x) => x.AliasName)).toEqual(["alias/app/one"]);
    await kms.send(new aws.UpdateAliasCommand({ AliasName: "alias/app/one", TargetKeyId: b }));
    expect((await kms.send(new aws.DescribeKeyCommand({ KeyId: "alias/app/one" }))).KeyMetadata!.KeyId).toBe(b);
    await kms.send(new aws.DeleteAliasCommand({ AliasName: "alias/app/one" }));
    expect((await awsError(kms.send(new aws.DeleteAliasCommand({ AliasName: "alias/app/one" })))).name).toBe("NotFoundException");
    expect((await awsError(kms.send(new aws.CreateAliasCommand({ AliasName: "alias/bad name", TargetKeyId: a })))).name).toMatch(/ValidationException|InvalidAliasNameException/);
  });

  it("TagResource, ListResourceTags and UntagResource", async () => {
    const keyId = await symmetricKey();
    await kms.send(new aws.TagResourceCommand({ KeyId: keyId, Tags: [{ TagKey: "b", TagValue: "2" }, { TagKey: "a", TagValue: "1" }] }));
    expect((await kms.send(new aws.ListResourceTagsCommand({ KeyId: keyId }))).Tags).toEqual([{ TagKey: "a", TagValue: "1" }, { TagKey: "b", TagValue: "2" }]);
    const first = await kms.send(new aws.ListResourceTagsCommand({ KeyId: keyId, Limit: 1 }));
    expect([first.Tags, first.Truncated]).toEqual([[{ TagKey: "a", TagValue: "1" }], true]);
    const second = await kms.send(new aws.ListResourceTagsCommand({ KeyId: keyId, Limit: 1, Marker: first.NextMarker }));
    expect([second.Tags, second.Truncated]).toEqual([[{ TagKey: "b", TagValue: "2" }], false]);
    await kms.send(new aws.UntagResourceCommand({ KeyId: keyId, TagKeys: ["a"] }));
    expect((await kms.send(new aws.ListResourceTagsCommand({ KeyId: keyId }))).Tags).toEqual([{ TagKey: "b", TagValue: "2" }]);
    const tooMany = Array.from({ length: 21 }, (_, i) => ({ TagKey: `k${i}`, TagValue: "v" }));
    expect((await awsError(kms.send(new aws.TagResourceCommand({ KeyId: keyId, Tags: tooMany })))).name).toMatch(/TagException|LimitExceededException/);
  });

  it("GetKeyPolicy, PutKeyPolicy and ListKeyPolicies", async () => {
    const keyId = await symmetricKey();
    expect((await kms.send(new aws.ListKeyPoliciesCommand({ KeyId: keyId }))).PolicyNames).toEqual(["default"]);
    const policy = JSON.parse((await kms.send(new aws.GetKeyPolicyCommand({ KeyId: keyId, PolicyName: "default" }))).Policy!);
    policy.Statement.push({ Effect: "Allow", Principal: ["reader"], Action: ["kms:DescribeKey"], Resource: "*" });
    await kms.send(new aws.PutKeyPolicyCommand({ KeyId: keyId, PolicyName: "default", Policy: JSON.stringify(policy) }));
    expect((await kms.send(new aws.GetKeyPolicyCommand({ KeyId: keyId }))).Policy).toContain("reader");
    const malformed = kms.send(new aws.PutKeyPolicyCommand({ KeyId: keyId, PolicyName: "default", Policy: "{\"Statement\": 3}" }));
    expect((await awsError(malformed)).name).toBe("MalformedPolicyDocumentException");
  });
});

describe("key import", () => {
  it("GetParametersForImport, ImportKeyMaterial and DeleteImportedKeyMaterial", async () => {
    const key = (await kms.send(new aws.CreateKeyCommand({ Origin: "EXTERNAL" }))).KeyMetadata!;
    expect(key).toMatchObject({ Origin: "EXTERNAL", KeyState: "PendingImport", Enabled: false });
    const params = await kms.send(new aws.GetParametersForImportCommand({ KeyId: key.KeyId, WrappingAlgorithm: "RSAES_OAEP_SHA_256", WrappingKeySpec: "RSA_2048" }));
    expect(params.KeyId).toBe(arn(key.KeyId!));
    expect(params.ParametersValidTo!.getTime()).toBeGreaterThan(Date.now() + 23 * 3_600_000);
    const material = randomBytes(32);
    const wrapped = publicEncrypt(
      { key: createPublicKey({ key: Buffer.from(params.PublicKey!), format: "der", type: "spki" }), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
      material,
    );
    await kms.send(
      new aws.ImportKeyMaterialCommand({ KeyId: key.KeyId, ImportToken: params.ImportToken, EncryptedKeyMaterial: wrapped, ExpirationModel: "KEY_MATERIAL_DOES_NOT_EXPIRE" }),
    );
    const imported = (await kms.send(new aws.DescribeKeyCommand({ KeyId: key.KeyId }))).KeyMetadata!;
    expect(imported).toMatchObject({ KeyState: "Enabled", ExpirationModel: "KEY_MATERIAL_DOES_NOT_EXPIRE" });
    const e = await kms.send(new aws.EncryptCommand({ KeyId: key.KeyId, Plaintext: Buffer.from("byok") }));
    expect(text((await kms.send(new aws.DecryptCommand({ CiphertextBlob: e.CiphertextBlob }))).Plaintext)).toBe("byok");
    const reused = kms.send(new aws.ImportKeyMaterialCommand({ KeyId: key.KeyId, ImportToken: params.ImportToken, EncryptedKeyMaterial: wrapped }));
    expect((await awsError(reused)).name).toMatch(/InvalidImportTokenException|KMSInvalidStateException/);
    expect((await kms.send(new aws.DeleteImportedKeyMaterialCommand({ KeyId: key.KeyId }))).$metadata.httpStatusCode).toBe(200);
    expect((await kms.send(new aws.DescribeKeyCommand({ KeyId: key.KeyId }))).KeyMetadata!.KeyState).toBe("PendingImport");
    expect((await awsError(kms.send(new aws.DecryptCommand({ CiphertextBlob: e.CiphertextBlob })))).name).toBe("KMSInvalidStateException");
  });
});

describe("DryRun", () => {
  it("answers DryRunOperationException (HTTP 412) when the call would succeed, the real error when not", async () => {
    const keyId = await symmetricKey("dry run");
    const plaintext = Buffer.from("dry");
    for (const command of [
      new aws.EncryptCommand({ KeyId: keyId, Plaintext: plaintext, DryRun: true }),
      new aws.GenerateDataKeyCommand({ KeyId: keyId, KeySpec: "AES_256", DryRun: true }),
    ]) {
      const err = await awsError(kms.send(command as never));
      expect([err.name, err.status]).toEqual(["DryRunOperationException", 412]);
    }
    const { CiphertextBlob } = await kms.send(new aws.EncryptCommand({ KeyId: keyId, Plaintext: plaintext }));
    const dryDecrypt = await awsError(kms.send(new aws.DecryptCommand({ CiphertextBlob, DryRun: true })));
    expect(dryDecrypt.name).toBe("DryRunOperationException");
    await kms.send(new aws.DisableKeyCommand({ KeyId: keyId }));
    expect((await awsError(kms.send(new aws.EncryptCommand({ KeyId: keyId, Plaintext: plaintext, DryRun: true })))).name).toBe("DisabledException");
  });
});
