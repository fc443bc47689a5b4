import { status } from "@grpc/grpc-js";
import { ErrorCode, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import {
  allowedUsages,
  checkUsable,
  dataKeyLength,
  pageSize,
  parseKeyReference,
  resolveKeyChoice,
  validateDescription,
  validatePlaintext,
  validateTags,
} from "./index";

const { KeySpec, KeyUsage, KeyState, ProtectionLevel, Origin, DataKeySpec } = kmsResources;

function caught(fn: () => unknown): KmsError {
  try {
    fn();
  } catch (err) {
    if (err instanceof KmsError) return err;
    throw err;
  }
  throw new Error("expected a KmsError");
}

const request = (o: Partial<{ keySpec: number; keyUsage: number; protectionLevel: number; origin: number }>) => ({
  keySpec: 0,
  keyUsage: 0,
  protectionLevel: 0,
  origin: 0,
  ...o,
});

describe("resolveKeyChoice", () => {
  it("defaults to AES-256 ENCRYPT_DECRYPT from KMS, HSM when one is there", () => {
    expect(resolveKeyChoice(request({}), true)).toEqual({
      keySpec: KeySpec.AES_256,
      keyUsage: KeyUsage.ENCRYPT_DECRYPT,
      protectionLevel: ProtectionLevel.HSM,
      origin: Origin.KMS,
    });
    expect(resolveKeyChoice(request({}), false).protectionLevel).toBe(ProtectionLevel.SOFTWARE);
  });

  it("names both values of a bad pairing", () => {
    const e = caught(() => resolveKeyChoice(request({ keySpec: KeySpec.AES_256, keyUsage: KeyUsage.SIGN_VERIFY }), true));
    expect(e.status).toBe(status.INVALID_ARGUMENT);
    expect(e.message).toBe("key_spec: KEY_SPEC_AES_256 cannot be used with key_usage KEY_USAGE_SIGN_VERIFY");
  });

  it("refuses unknown enum numbers naming the field", () => {
    expect(caught(() => resolveKeyChoice(request({ keySpec: 99 }), true)).message).toBe("key_spec: unknown value 99");
    expect(caught(() => resolveKeyChoice(request({ protectionLevel: 7 }), true)).message).toBe("protection_level: unknown value 7");
    expect(caught(() => resolveKeyChoice(request({ keyUsage: 9 }), true)).message).toBe("key_usage: unknown value 9");
  });

  it("creates every spec of the API with its usages", () => {
    expect(resolveKeyChoice(request({ keySpec: KeySpec.EC_P256, keyUsage: KeyUsage.SIGN_VERIFY }), true)).toEqual({
      keySpec: KeySpec.EC_P256,
      keyUsage: KeyUsage.SIGN_VERIFY,
      protectionLevel: ProtectionLevel.HSM,
      origin: Origin.KMS,
    });
    expect(resolveKeyChoice(request({ keySpec: KeySpec.RSA_4096 }), false).keyUsage).toBe(KeyUsage.ENCRYPT_DECRYPT);
    expect(resolveKeyChoice(request({ keySpec: KeySpec.HMAC_SHA512, keyUsage: KeyUsage.GENERATE_VERIFY_MAC }), false).keySpec).toBe(
      KeySpec.HMAC_SHA512,
    );
  });

  it("takes ORIGIN_EXTERNAL (material imported later)", () => {
    expect(resolveKeyChoice(request({ origin: Origin.EXTERNAL, protectionLevel: ProtectionLevel.SOFTWARE }), true)).toEqual({
      keySpec: KeySpec.AES_256,
      keyUsage: KeyUsage.ENCRYPT_DECRYPT,
      protectionLevel: ProtectionLevel.SOFTWARE,
      origin: Origin.EXTERNAL,
    });
  });
});

describe("allowedUsages", () => {
  it("follows the spec's valid pairs", () => {
    expect(allowedUsages(KeySpec.RSA_2048)).toEqual([KeyUsage.SIGN_VERIFY, KeyUsage.ENCRYPT_DECRYPT]);
    expect(allowedUsages(KeySpec.ED25519)).toEqual([KeyUsage.SIGN_VERIFY]);
    expect(allowedUsages(KeySpec.HMAC_SHA384)).toEqual([KeyUsage.GENERATE_VERIFY_MAC]);
    expect(allowedUsages(KeySpec.UNSPECIFIED)).toEqual([]);
  });
});

describe("checkUsable", () => {
  const key = { keyId: "k", keyState: KeyState.ENABLED, keyUsage: KeyUsage.ENCRYPT_DECRYPT, keySpec: KeySpec.AES_256 };
  it("lets an enabled encryption key through", () => {
    expect(() => checkUsable(key, "Encrypt")).not.toThrow();
  });
  it.each([
    [KeyState.DISABLED, ErrorCode.Disabled, "KEY_STATE_DISABLED"],
    [KeyState.PENDING_DELETION, ErrorCode.PendingDeletion, "KEY_STATE_PENDING_DELETION"],
    [KeyState.PENDING_IMPORT, ErrorCode.PendingImport, "KEY_STATE_PENDING_IMPORT"],
  ])("refuses state %s with FAILED_PRECONDITION naming it", (state, code, name) => {
    const e = caught(() => checkUsable({ ...key, keyState: state }, "Decrypt"));
    expect(e.status).toBe(status.FAILED_PRECONDITION);
    expect(e.code).toBe(code);
    expect(e.message).toBe(`key k is ${name}`);
  });
  it("refuses the wrong usage", () => {
    const e = caught(() => checkUsable({ ...key, keyUsage: KeyUsage.SIGN_VERIFY }, "Encrypt"));
    expect(e.code).toBe(ErrorCode.KeyUsage);
    expect(e.message).toBe("key k (KEY_SPEC_AES_256, KEY_USAGE_SIGN_VERIFY) cannot be used for Encrypt");
  });
  it("refuses the wrong key family for the same usage", () => {
    const rsa = { ...key, keySpec: KeySpec.RSA_2048 };
    expect(caught(() => checkUsable(rsa, "Encrypt")).code).toBe(ErrorCode.KeyUsage);
    expect(() => checkUsable(rsa, "AsymmetricDecrypt")).not.toThrow();
    expect(caught(() => checkUsable(key, "AsymmetricDecrypt")).code).toBe(ErrorCode.KeyUsage);
  });
});

describe("limits", () => {
  it("checks plaintext size", () => {
    expect(() => validatePlaintext(new Uint8Array(1))).not.toThrow();
    expect(() => validatePlaintext(new Uint8Array(6144))).not.toThrow();
    expect(caught(() => validatePlaintext(new Uint8Array(0))).message).toBe("plaintext: must be 1 to 6144 bytes, got 0");
    expect(caught(() => validatePlaintext(new Uint8Array(6145))).message).toBe("plaintext: must be 1 to 6144 bytes, got 6145");
  });

  it("counts description in characters", () => {
    expect(() => validateDescription("é".repeat(8192))).not.toThrow();
    expect(caught(() => validateDescription("x".repeat(8193))).message).toBe("description: must be at most 8192 characters");
    expect(caught(() => validateDescription("a\u0000b")).message).toBe("description: must not contain U+0000");
    expect(caught(() => validateTags({ team: "a\u0000" })).message).toBe("tags: tag keys and values must not contain U+0000");
  });

  it("sizes data keys", () => {
    expect(dataKeyLength(DataKeySpec.UNSPECIFIED, 0)).toBe(32);
    expect(dataKeyLength(DataKeySpec.AES_128, 0)).toBe(16);
    expect(dataKeyLength(DataKeySpec.UNSPECIFIED, 1024)).toBe(1024);
    expect(caught(() => dataKeyLength(DataKeySpec.UNSPECIFIED, 1025)).message).toBe("number_of_bytes: must be 1 to 1024, got 1025");
    expect(caught(() => dataKeyLength(DataKeySpec.UNSPECIFIED, -1)).status).toBe(status.INVALID_ARGUMENT);
    expect(caught(() => dataKeyLength(DataKeySpec.AES_256, 16)).message).toMatch(/^number_of_bytes: /);
    expect(caught(() => dataKeyLength(5 as kmsResources.DataKeySpec, 0)).message).toBe("key_spec: unknown value 5");
  });

  it("follows AIP page sizes", () => {
    expect(pageSize(0)).toBe(100);
    expect(pageSize(7)).toBe(7);
    expect(pageSize(5000)).toBe(1000);
    expect(caught(() => pageSize(-1)).message).toBe("page_size: must not be negative, got -1");
  });

  it("checks tags", () => {
    const many = Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, "v"]));
    expect(caught(() => validateTags(many)).message).toBe("tags: at most 20 tags, got 21");
    expect(caught(() => validateTags({ k: "v".repeat(257) })).message).toBe('tags: tag "k": value must be at most 256 characters');
    expect(() => validateTags({ ["k".repeat(128)]: "v".repeat(256) })).not.toThrow();
  });
});

describe("parseKeyReference", () => {
  it("accepts UUIDs and aliases", () => {
    expect(parseKeyReference("0F8E2B9C-3D4A-4E5F-8A6B-7C8D9E0F1A2B")).toEqual({
      kind: "id",
      keyId: "0f8e2b9c-3d4a-4e5f-8a6b-7c8d9e0f1a2b",
    });
    expect(parseKeyReference("alias/app:prod/db_key-1")).toEqual({ kind: "alias", aliasName: "alias/app:prod/db_key-1" });
  });
  it("names the field of a bad reference", () => {
    expect(caught(() => parseKeyReference("")).message).toBe("key_id: is required");
    expect(caught(() => parseKeyReference("nope", "destination_key_id")).message).toBe(
      'destination_key_id: must be a key UUID or "alias/<name>"',
    );
    expect(caught(() => parseKeyReference("alias/")).status).toBe(status.INVALID_ARGUMENT);
    expect(caught(() => parseKeyReference("alias/" + "a".repeat(256))).status).toBe(status.INVALID_ARGUMENT);
  });
});
