import { status } from "@grpc/grpc-js";
import { ErrorCode, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import {
  checkImportOperation,
  checkMaterialExpireTime,
  checkWrappingChoice,
  stateAfterImport,
  stateAfterMaterialRemoved,
  wrappingRsaSpec,
} from "./import";

const { KeySpec, KeyState, Origin, WrappingAlgorithm, WrappingKeySpec } = kmsResources;

function caught(fn: () => unknown): KmsError {
  try {
    fn();
  } catch (err) {
    if (err instanceof KmsError) return err;
    throw err;
  }
  throw new Error("expected a KmsError");
}

describe("checkImportOperation", () => {
  it("allows ORIGIN_EXTERNAL keys in every state but PENDING_DELETION", () => {
    for (const keyState of [KeyState.PENDING_IMPORT, KeyState.ENABLED, KeyState.DISABLED]) {
      expect(() => checkImportOperation({ keyId: "k", keyState, origin: Origin.EXTERNAL }, "ImportKeyMaterial")).not.toThrow();
    }
    const e = caught(() => checkImportOperation({ keyId: "k", keyState: KeyState.PENDING_DELETION, origin: Origin.EXTERNAL }, "DeleteKeyMaterial"));
    expect([e.status, e.code, e.message]).toEqual([
      status.FAILED_PRECONDITION,
      ErrorCode.PendingDeletion,
      "DeleteKeyMaterial is not allowed: key k is KEY_STATE_PENDING_DELETION",
    ]);
  });

  it("refuses keys the KMS generated", () => {
    const e = caught(() => checkImportOperation({ keyId: "k", keyState: KeyState.ENABLED, origin: Origin.KMS }, "GetParametersForImport"));
    expect([e.status, e.code, e.message]).toEqual([
      status.FAILED_PRECONDITION,
      ErrorCode.KeyUsage,
      "GetParametersForImport is only for ORIGIN_EXTERNAL keys; key k is ORIGIN_KMS",
    ]);
  });
});

describe("state changes", () => {
  it("enables a key waiting for material and keeps other states", () => {
    expect(stateAfterImport(KeyState.PENDING_IMPORT)).toBe(KeyState.ENABLED);
    expect(stateAfterImport(KeyState.DISABLED)).toBe(KeyState.DISABLED);
    expect(stateAfterImport(KeyState.ENABLED)).toBe(KeyState.ENABLED);
  });

  it("returns to PENDING_IMPORT when material goes, unless the key is pending deletion", () => {
    expect(stateAfterMaterialRemoved(KeyState.ENABLED)).toBe(KeyState.PENDING_IMPORT);
    expect(stateAfterMaterialRemoved(KeyState.DISABLED)).toBe(KeyState.PENDING_IMPORT);
    expect(stateAfterMaterialRemoved(KeyState.PENDING_DELETION)).toBe(KeyState.PENDING_DELETION);
  });
});

describe("wrapping choices", () => {
  it("requires a known algorithm and key spec", () => {
    expect(() => checkWrappingChoice(WrappingAlgorithm.RSA_AES_KEY_WRAP_SHA_256, WrappingKeySpec.RSA_4096)).not.toThrow();
    expect(caught(() => checkWrappingChoice(WrappingAlgorithm.UNSPECIFIED, WrappingKeySpec.RSA_2048)).message).toBe(
      "wrapping_algorithm: must be RSAES_OAEP_SHA_256, RSAES_OAEP_SHA_1 or RSA_AES_KEY_WRAP_SHA_256",
    );
    expect(caught(() => checkWrappingChoice(WrappingAlgorithm.RSAES_OAEP_SHA_1, 9)).message).toBe("wrapping_key_spec: must be RSA_2048, RSA_3072 or RSA_4096");
  });

  it("maps wrapping key specs to RSA key specs", () => {
    expect(wrappingRsaSpec(WrappingKeySpec.RSA_2048)).toBe(KeySpec.RSA_2048);
    expect(wrappingRsaSpec(WrappingKeySpec.RSA_3072)).toBe(KeySpec.RSA_3072);
    expect(wrappingRsaSpec(WrappingKeySpec.RSA_4096)).toBe(KeySpec.RSA_4096);
  });
});

describe("checkMaterialExpireTime", () => {
  it("accepts none or a future time, and refuses now or the past", () => {
    const now = new Date("2030-01-01T00:00:00Z");
    expect(() => checkMaterialExpireTime(undefined, now)).not.toThrow();
    expect(() => checkMaterialExpireTime(new Date("2030-01-01T00:00:01Z"), now)).not.toThrow();
    expect(caught(() => checkMaterialExpireTime(now, now)).message).toBe("key_material_expire_time: must be in the future, got 2030-01-01T00:00:00.000Z");
  });
});
