// The AWS front's tables: which kms.v1 operation (and so which policy action) each AWS operation runs,
// how requests and responses translate, and how errors are named.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ErrorCode, KmsError, invalidArgument } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { Arns } from "./arns";
import { AWS_ERRORS, AwsAuthError, awsErrorOf } from "./errors";
import { Members } from "./json";
import type { AwsOperation } from "./operation";
import { keySpecFromAws, keySpecToAws, keyUsageFromAws, signingAlgorithmFromAws } from "./specs";
import { AWS_OPERATIONS, UNSUPPORTED_OPERATIONS } from "./table";

const arns = new Arns("eu-west-1", "123456789012");
const KEY = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";

function operation(name: string, body: Record<string, unknown> = {}): AwsOperation {
  const entry = AWS_OPERATIONS.get(name);
  if (!entry) throw new Error(`no ${name}`);
  return typeof entry === "function" ? entry(new Members(body as never)) : entry;
}

/** The kms.v1 request an AWS request translates to (its fields, loosely typed for the checks below). */
const decode = (name: string, body: Record<string, unknown>): Record<string, unknown> => {
  const op = operation(name, body);
  return create(op.target.method.input, op.decode({ arns, members: new Members(body as never) })) as unknown as Record<string, unknown>;
};

const ISSUE_OPERATIONS = (
  "CreateKey DescribeKey ListKeys EnableKey DisableKey ScheduleKeyDeletion CancelKeyDeletion UpdateKeyDescription Encrypt Decrypt " +
  "ReEncrypt GenerateDataKey GenerateDataKeyWithoutPlaintext GenerateDataKeyPair GenerateDataKeyPairWithoutPlaintext GenerateRandom Sign Verify GetPublicKey GenerateMac VerifyMac CreateAlias " +
  "UpdateAlias DeleteAlias ListAliases TagResource UntagResource ListResourceTags GetKeyPolicy PutKeyPolicy ListKeyPolicies " +
  "EnableKeyRotation DisableKeyRotation GetKeyRotationStatus RotateKeyOnDemand GetParametersForImport ImportKeyMaterial DeleteImportedKeyMaterial " +
  // Issue 21's grants and key agreement.
  "CreateGrant ListGrants ListRetirableGrants RetireGrant RevokeGrant DeriveSharedSecret"
).split(" ");

describe("the operation table", () => {
  it("has every operation of issues 18 and 21, and no unsupported one", () => {
    expect([...AWS_OPERATIONS.keys()].sort()).toEqual([...ISSUE_OPERATIONS].sort());
    expect(UNSUPPORTED_OPERATIONS.filter((n) => AWS_OPERATIONS.has(n))).toEqual([]);
  });

  it("runs each through the kms.v1 operation whose action key policies name", () => {
    const targets = Object.fromEntries(ISSUE_OPERATIONS.map((n) => [n, operation(n).target.name]));
    expect(targets).toMatchObject({
      Sign: "AsymmetricSign",
      Verify: "AsymmetricVerify",
      PutKeyPolicy: "SetKeyPolicy",
      ListKeyPolicies: "DescribeKey",
      EnableKeyRotation: "UpdateRotationPolicy",
      DisableKeyRotation: "UpdateRotationPolicy",
      GetKeyRotationStatus: "DescribeKey",
      RotateKeyOnDemand: "CreateKeyVersion",
      DeleteImportedKeyMaterial: "DeleteKeyMaterial",
      Encrypt: "Encrypt",
      ListAliases: "ListAliases",
    });
    expect(operation("Encrypt", { EncryptionAlgorithm: "RSAES_OAEP_SHA_256" }).target.name).toBe("AsymmetricEncrypt");
    expect(operation("Decrypt", { EncryptionAlgorithm: "RSAES_OAEP_SHA_1" }).target.name).toBe("AsymmetricDecrypt");
    expect(operation("Decrypt", { EncryptionAlgorithm: 7 }).target.name).toBe("Decrypt"); // whose decode refuses it
    expect(operation("ListAliases", { KeyId: KEY }).target.name).toBe("ListAliasesByKeyId");
  });
});

describe("requests", () => {
  it("take key ids, key ARNs, alias names and alias ARNs", () => {
    for (const KeyId of [KEY, arns.keyArn(KEY)]) expect(decode("DescribeKey", { KeyId }).keyId).toBe(KEY);
    for (const KeyId of ["alias/app", arns.aliasArn("alias/app")]) expect(decode("DescribeKey", { KeyId }).keyId).toBe("alias/app");
    expect(() => decode("DescribeKey", { KeyId: `arn:aws:kms:us-east-1:123456789012:key/${KEY}` })).toThrow(expect.objectContaining({ code: ErrorCode.KeyNotFound }));
    expect(() => decode("DescribeKey", { KeyId: "arn:aws:s3:::bucket" })).toThrow(/ARN/);
    expect(() => decode("DescribeKey", {})).toThrow(/KeyId: is required/);
  });

  it("decode blobs from base64 and AWS's names into kms.v1 values", () => {
    const e = decode("Encrypt", { KeyId: KEY, Plaintext: "aGk=", EncryptionContext: { a: "b" } }) as { plaintext: Uint8Array; encryptionContext: object };
    expect([Buffer.from(e.plaintext).toString(), e.encryptionContext]).toEqual(["hi", { a: "b" }]);
    expect(() => decode("Encrypt", { KeyId: KEY, Plaintext: "not base64!" })).toThrow(/Plaintext: must be base64/);
    const k = decode("CreateKey", { KeySpec: "ECC_SECG_P256K1", KeyUsage: "SIGN_VERIFY", Origin: "EXTERNAL", Tags: [{ TagKey: "t", TagValue: "v" }] });
    expect(k).toMatchObject({ keySpec: kmsResources.KeySpec.EC_P256K, keyUsage: kmsResources.KeyUsage.SIGN_VERIFY, origin: kmsResources.Origin.EXTERNAL, tags: { t: "v" } });
    expect(decode("GenerateDataKey", { KeyId: KEY, KeySpec: "AES_128" })).toMatchObject({ keySpec: kmsResources.DataKeySpec.AES_128 });
    expect(decode("EnableKeyRotation", { KeyId: KEY, RotationPeriodInDays: 90 })).toMatchObject({ enableAutomaticRotation: true, rotationInterval: { seconds: 90n * 86400n } });
    expect(decode("Sign", { KeyId: KEY, Message: "AAAA", MessageType: "DIGEST", SigningAlgorithm: "ECDSA_SHA_256" })).toMatchObject({
      algorithm: kmsResources.SigningAlgorithm.ECDSA_SHA_256,
      input: { case: "digest" },
    });
    expect(decode("ImportKeyMaterial", { KeyId: KEY, ImportToken: Buffer.from("tok").toString("base64"), EncryptedKeyMaterial: "AAAA", ValidTo: 1_900_000_000 })).toMatchObject({
      importToken: "tok",
      keyMaterialExpireTime: { seconds: 1_900_000_000n },
    });
  });

  it("refuse what this service does not have with UnsupportedOperationException naming it", () => {
    for (const [name, body, named] of [
      ["CreateKey", { KeySpec: "SM2" }, "SM2"],
      ["CreateKey", { CustomKeyStoreId: "cks-1" }, "CustomKeyStoreId"],
      ["CreateKey", { Origin: "AWS_CLOUDHSM" }, "AWS_CLOUDHSM"],
      ["Encrypt", { KeyId: KEY, Plaintext: "aGk=", EncryptionAlgorithm: "SM2PKE" }, "SM2PKE"],
      ["Sign", { KeyId: KEY, Message: "AAAA", SigningAlgorithm: "RSASSA_PSS_SHA_512" }, "RSASSA_PSS_SHA_512"],
      ["GetParametersForImport", { KeyId: KEY, WrappingAlgorithm: "RSAES_PKCS1_V1_5", WrappingKeySpec: "RSA_2048" }, "RSAES_PKCS1_V1_5"],
    ] as const) {
      let thrown: KmsError | undefined;
      try {
        decode(name, body);
      } catch (err) {
        thrown = err as KmsError;
      }
      expect([name, thrown && awsErrorOf(thrown).type, thrown?.message]).toEqual([name, "UnsupportedOperationException", expect.stringContaining(named)]);
    }
  });
});

describe("secrets", () => {
  it("a decoded Plaintext is the kms.v1 request's own field, which the pipeline zeroes after the call", () => {
    for (const body of [{ KeyId: KEY, Plaintext: "c2VjcmV0" }, { KeyId: KEY, Plaintext: "c2VjcmV0", EncryptionAlgorithm: "RSAES_OAEP_SHA_256" }]) {
      const op = operation("Encrypt", body);
      const request = create(op.target.method.input, op.decode({ arns, members: new Members(body as never) }));
      const [secret] = op.target.requestSecrets!(request);
      expect(Buffer.from(secret!).toString()).toBe("secret");
      secret!.fill(0);
      expect((request as unknown as { plaintext: Uint8Array }).plaintext.every((b) => b === 0)).toBe(true);
    }
  });

  it("every operation whose response holds a plaintext or data key declares it", () => {
    for (const [name, body] of [["Decrypt", {}], ["Decrypt", { EncryptionAlgorithm: "RSAES_OAEP_SHA_1" }], ["GenerateDataKey", {}]] as const) {
      const op = operation(name, body);
      const plaintext = Buffer.from("data key");
      expect(op.target.responseSecrets!({ plaintext } as never)).toContain(plaintext);
    }
    const sharedSecret = Buffer.from("shared secret");
    expect(operation("DeriveSharedSecret").target.responseSecrets!({ sharedSecret } as never)).toContain(sharedSecret);
  });
});

describe("DeriveSharedSecret", () => {
  it("takes KeyAgreementAlgorithm ECDH and the peer's PublicKey; refuses another algorithm and Recipient; DryRun and GrantTokens as elsewhere", () => {
    const PublicKey = Buffer.from("peer").toString("base64");
    expect(decode("DeriveSharedSecret", { KeyId: KEY, KeyAgreementAlgorithm: "ECDH", PublicKey })).toMatchObject({ keyId: KEY, keyAgreementAlgorithm: 1 });
    expect(() => decode("DeriveSharedSecret", { KeyId: KEY, KeyAgreementAlgorithm: "DH", PublicKey })).toThrow(/KeyAgreementAlgorithm: must be one of ECDH/);
    expect(() => decode("DeriveSharedSecret", { KeyId: KEY, KeyAgreementAlgorithm: "ECDH" })).toThrow(/PublicKey: is required/);
    expect(() => decode("DeriveSharedSecret", { KeyId: KEY, KeyAgreementAlgorithm: "ECDH", PublicKey, Recipient: { AttestationDocument: "eA==" } })).toThrow(/is not supported/);
    expect(decode("DeriveSharedSecret", { KeyId: KEY, KeyAgreementAlgorithm: "ECDH", PublicKey, DryRun: true, GrantTokens: ["t"] })).toMatchObject({ dryRun: true, grantTokens: ["t"] });
    expect(keyUsageFromAws("KEY_AGREEMENT")).toBe(kmsResources.KeyUsage.KEY_AGREEMENT);
  });
});

describe("responses", () => {
  const encode = (name: string, response: object, body: Record<string, unknown> = {}) => {
    const op = operation(name, body);
    const members = new Members(body as never);
    return op.encode(create(op.target.method.output, response as never), { arns, members }, create(op.target.method.input, {}));
  };

  it("carry ARNs, base64 blobs and epoch seconds", () => {
    const created = timestampFromDate(new Date("2030-01-02T03:04:05.250Z"));
    const metadata = { keyId: KEY, keySpec: kmsResources.KeySpec.RSA_3072, keyUsage: kmsResources.KeyUsage.SIGN_VERIFY, keyState: kmsResources.KeyState.ENABLED, creationTime: created };
    expect(encode("DescribeKey", { keyMetadata: metadata })).toEqual({
      KeyMetadata: expect.objectContaining({
        Arn: `arn:aws:kms:eu-west-1:123456789012:key/${KEY}`,
        AWSAccountId: "123456789012",
        CreationDate: 1893553445.25,
        KeySpec: "RSA_3072",
        SigningAlgorithms: ["RSASSA_PSS_SHA_256", "RSASSA_PKCS1_V1_5_SHA_256"],
        Enabled: true,
      }),
    });
    expect(encode("Encrypt", { ciphertextBlob: Buffer.from("blob"), keyId: KEY })).toEqual({
      CiphertextBlob: "YmxvYg==",
      KeyId: arns.keyArn(KEY),
      EncryptionAlgorithm: "SYMMETRIC_DEFAULT",
    });
    expect(encode("ListKeys", { keys: [{ keyId: KEY }], nextPageToken: "next" })).toEqual({ Keys: [{ KeyId: KEY, KeyArn: arns.keyArn(KEY) }], NextMarker: "next", Truncated: true });
  });

  it("Verify and VerifyMac answer a mismatch with AWS's exceptions, not false", () => {
    const verify = () => encode("Verify", { value: false, keyId: KEY }, { SigningAlgorithm: "ECDSA_SHA_256" });
    expect(verify).toThrow(expect.objectContaining({ code: ErrorCode.InvalidSignature }));
    expect(() => encode("VerifyMac", { macValid: false, keyId: KEY }, { MacAlgorithm: "HMAC_SHA_256" })).toThrow(expect.objectContaining({ code: ErrorCode.InvalidMac }));
    expect(encode("Verify", { value: true, keyId: KEY }, { SigningAlgorithm: "ECDSA_SHA_256" })).toMatchObject({ SignatureValid: true });
  });
});

describe("errors", () => {
  it("names every error code, with the statuses the SDKs retry on", () => {
    expect(Object.keys(AWS_ERRORS).sort()).toEqual(Object.values(ErrorCode).sort());
    const of = (code: ErrorCode) => awsErrorOf(new KmsError(code, "m"));
    expect(of(ErrorCode.Internal)).toEqual({ type: "KMSInternalException", httpStatus: 500 });
    expect(of(ErrorCode.Throttled)).toEqual({ type: "ThrottlingException", httpStatus: 400 });
    expect(of(ErrorCode.Unavailable)).toEqual({ type: "DependencyTimeoutException", httpStatus: 503 });
    expect(of(ErrorCode.PermissionDenied)).toEqual({ type: "AccessDeniedException", httpStatus: 400 });
    expect(of(ErrorCode.KeyNotFound).type).toBe("NotFoundException");
    expect(of(ErrorCode.Disabled).type).toBe("DisabledException");
    expect(of(ErrorCode.PendingDeletion).type).toBe("KMSInvalidStateException");
    expect(of(ErrorCode.KeyUsage).type).toBe("InvalidKeyUsageException");
    expect(of(ErrorCode.AliasExists).type).toBe("AlreadyExistsException");
    expect(of(ErrorCode.Unimplemented).type).toBe("UnsupportedOperationException");
  });

  it("narrows INVALID_ARGUMENT by the field it names", () => {
    expect(awsErrorOf(invalidArgument("policy", "bad")).type).toBe("MalformedPolicyDocumentException");
    expect(awsErrorOf(invalidArgument("tags", "too long")).type).toBe("TagException");
    expect(awsErrorOf(invalidArgument("alias_name", "bad")).type).toBe("InvalidAliasNameException");
    expect(awsErrorOf(invalidArgument("page_token", "bad")).type).toBe("InvalidMarkerException");
    expect(awsErrorOf(invalidArgument("KeyId: ARN", "bad")).type).toBe("InvalidArnException");
    expect(awsErrorOf(invalidArgument("plaintext", "too long")).type).toBe("ValidationException");
  });

  it("keeps the AWS name of a failed authentication", () => {
    expect(awsErrorOf(new AwsAuthError("InvalidSignatureException", "m"))).toEqual({ type: "InvalidSignatureException", httpStatus: 400 });
  });
});

describe("key specs", () => {
  it("map both ways; AES-128 shows as SYMMETRIC_DEFAULT", () => {
    for (const name of ["SYMMETRIC_DEFAULT", "RSA_2048", "ECC_NIST_P384", "ECC_NIST_EDWARDS25519", "HMAC_512"]) expect(keySpecToAws(keySpecFromAws(name))).toBe(name);
    expect(keySpecToAws(kmsResources.KeySpec.AES_128)).toBe("SYMMETRIC_DEFAULT");
    expect(() => keySpecFromAws("ECC_NIST_P521")).toThrow(/ECC_NIST_P521 is not supported/);
    expect(() => keySpecFromAws("AES_256")).toThrow(/unknown key spec/);
    expect(() => signingAlgorithmFromAws("SM2DSA")).toThrow(/SM2DSA is not supported/);
  });

  it("cover every kms.v1 spec the service can create", () => {
    const specs = kmsResources.KeySpecSchema.values.map((v) => v.number).filter((n) => n !== kmsResources.KeySpec.UNSPECIFIED);
    expect(specs.map((s) => keySpecFromAws(keySpecToAws(s)) === s || s === kmsResources.KeySpec.AES_128)).not.toContain(false);
  });
});
