import { status } from "@grpc/grpc-js";
import { ErrorCode, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { checkCanAddVersion, deleteTime, nextState, rotationPolicy } from "./lifecycle";
import type { LifecycleAction } from "./lifecycle";

const { KeyState, KeySpec, Origin } = kmsResources;
const E = KeyState.ENABLED;
const D = KeyState.DISABLED;
const PD = KeyState.PENDING_DELETION;
const PI = KeyState.PENDING_IMPORT;

function outcome(fn: () => number): number | string {
  try {
    return fn();
  } catch (err) {
    if (err instanceof KmsError && err.status === status.FAILED_PRECONDITION) return err.code;
    throw err;
  }
}

describe("nextState: every state × action", () => {
  // [state, action, result]: a state, or the kms-error-code of the refusal.
  const table: [number, LifecycleAction, number | string][] = [
    [E, "EnableKey", E],
    [D, "EnableKey", E],
    [PD, "EnableKey", ErrorCode.PendingDeletion],
    [PI, "EnableKey", ErrorCode.PendingImport],
    [E, "DisableKey", D],
    [D, "DisableKey", D],
    [PD, "DisableKey", ErrorCode.PendingDeletion],
    [PI, "DisableKey", ErrorCode.PendingImport],
    [E, "ScheduleKeyDeletion", PD],
    [D, "ScheduleKeyDeletion", PD],
    [PI, "ScheduleKeyDeletion", PD],
    [PD, "ScheduleKeyDeletion", ErrorCode.PendingDeletion],
    [E, "CancelKeyDeletion", ErrorCode.Disabled],
    [D, "CancelKeyDeletion", ErrorCode.Disabled],
    [PI, "CancelKeyDeletion", ErrorCode.PendingImport],
    [PD, "CancelKeyDeletion", D],
  ];
  it.each(table)("state %i, %s → %s", (state, action, expected) => {
    expect(outcome(() => nextState({ keyId: "k", keyState: state, deletionProtection: false, hasMaterial: true }, action))).toBe(expected);
  });

  it("names the state in the refusal", () => {
    expect(() => nextState({ keyId: "k", keyState: PD, deletionProtection: false, hasMaterial: true }, "EnableKey")).toThrow(
      "EnableKey is not allowed: key k is KEY_STATE_PENDING_DELETION",
    );
  });

  it("refuses to schedule deletion of a protected key", () => {
    const key = { keyId: "k", keyState: E, deletionProtection: true, hasMaterial: true };
    expect(outcome(() => nextState(key, "ScheduleKeyDeletion"))).toBe(ErrorCode.DeletionProtected);
  });

  it("cancels back to PENDING_IMPORT when the key has no material", () => {
    expect(nextState({ keyId: "k", keyState: PD, deletionProtection: false, hasMaterial: false }, "CancelKeyDeletion")).toBe(PI);
  });
});

describe("deleteTime", () => {
  const now = new Date("2026-01-01T00:00:00Z");
  it("defaults to 30 days and accepts 7..366", () => {
    expect(deleteTime(now, 0).toISOString()).toBe("2026-01-31T00:00:00.000Z");
    expect(deleteTime(now, 7).toISOString()).toBe("2026-01-08T00:00:00.000Z");
    expect(deleteTime(now, 366).toISOString()).toBe("2027-01-02T00:00:00.000Z");
  });
  it("refuses windows out of range naming the field", () => {
    expect(() => deleteTime(now, 6)).toThrow("pending_window_in_days: must be 7 to 366, got 6");
    expect(() => deleteTime(now, 367)).toThrow("pending_window_in_days: must be 7 to 366, got 367");
    expect(() => deleteTime(now, -1)).toThrow("pending_window_in_days: must be 7 to 366, got -1");
  });
});

describe("rotationPolicy", () => {
  const now = new Date("2026-01-01T00:00:00Z");
  const aes = { keySpec: KeySpec.AES_256, origin: Origin.KMS };
  const days = (d: number) => ({ seconds: BigInt(d * 86400), nanos: 0 });

  it("defaults to 365 days", () => {
    expect(rotationPolicy(aes, true, undefined, now)).toEqual({
      automaticRotation: true,
      rotationIntervalSeconds: 365 * 86400,
      nextRotationTime: new Date("2027-01-01T00:00:00Z"),
    });
  });
  it("accepts 7 and 730 days, refuses 6 and 731", () => {
    expect(rotationPolicy(aes, true, days(7), now).rotationIntervalSeconds).toBe(7 * 86400);
    expect(rotationPolicy(aes, true, days(730), now).rotationIntervalSeconds).toBe(730 * 86400);
    expect(() => rotationPolicy(aes, true, days(6), now)).toThrow(/^rotation_interval: must be 7 to 730 days/);
    expect(() => rotationPolicy(aes, true, days(731), now)).toThrow(/^rotation_interval: must be 7 to 730 days/);
  });
  it("disables", () => {
    expect(rotationPolicy(aes, false, undefined, now)).toEqual({ automaticRotation: false, rotationIntervalSeconds: null, nextRotationTime: null });
    expect(() => rotationPolicy(aes, false, days(30), now)).toThrow(/^rotation_interval: /);
  });
  it("only rotates symmetric keys the KMS made", () => {
    expect(() => rotationPolicy({ keySpec: KeySpec.RSA_2048, origin: Origin.KMS }, true, undefined, now)).toThrow(/^enable_automatic_rotation: /);
    expect(() => rotationPolicy({ keySpec: KeySpec.AES_256, origin: Origin.EXTERNAL }, true, undefined, now)).toThrow(/^enable_automatic_rotation: /);
  });
});

describe("checkCanAddVersion", () => {
  it("needs an enabled KMS-made key", () => {
    expect(() => checkCanAddVersion({ keyId: "k", keyState: E, origin: Origin.KMS })).not.toThrow();
    expect(outcome(() => (checkCanAddVersion({ keyId: "k", keyState: D, origin: Origin.KMS }), 0))).toBe(ErrorCode.Disabled);
    expect(outcome(() => (checkCanAddVersion({ keyId: "k", keyState: E, origin: Origin.EXTERNAL }), 0))).toBe(ErrorCode.KeyUsage);
    expect(outcome(() => (checkCanAddVersion({ keyId: "k", keyState: E, origin: Origin.KMS, keySpec: KeySpec.HMAC_SHA256 }), 0))).toBe(ErrorCode.KeyUsage);
    expect(() => checkCanAddVersion({ keyId: "k", keyState: E, origin: Origin.KMS, keySpec: KeySpec.RSA_2048 })).not.toThrow();
  });
});
