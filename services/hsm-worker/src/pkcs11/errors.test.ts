import * as pkcs11js from "pkcs11js";
import { ckrName, hsmCall, hsmCallAsync, isSessionLoss, needsReinitialize, Pkcs11CallError } from "./errors";

describe("hsmCall", () => {
  it("wraps a Pkcs11Error with its context and CKR name", () => {
    let caught: unknown;
    try {
      hsmCall("C_UnwrapKey(root key)", () => {
        throw new pkcs11js.Pkcs11Error("CKR_WRAPPED_KEY_INVALID", pkcs11js.CKR_WRAPPED_KEY_INVALID, "C_UnwrapKey");
      });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(Pkcs11CallError);
    expect((caught as Pkcs11CallError).message).toBe("C_UnwrapKey(root key): CKR_WRAPPED_KEY_INVALID");
    expect((caught as Pkcs11CallError).code).toBe(0x110);
  });

  it("wraps async failures and non-PKCS#11 errors", async () => {
    await expect(hsmCallAsync("C_Encrypt(AES-GCM)", () => Promise.reject(new TypeError("bad buffer")))).rejects.toMatchObject({
      name: "Pkcs11CallError",
      message: "C_Encrypt(AES-GCM): native error",
      code: undefined,
    });
  });

  it("names unknown codes in hex", () => {
    expect(ckrName(0x80000001)).toBe("CKR_0x80000001");
    expect(ckrName(pkcs11js.CKR_SESSION_HANDLE_INVALID)).toBe("CKR_SESSION_HANDLE_INVALID");
  });
});

describe("session loss", () => {
  const error = (code: number) => new Pkcs11CallError("test", code);
  it.each([
    ["CKR_SESSION_HANDLE_INVALID", pkcs11js.CKR_SESSION_HANDLE_INVALID, true, false],
    ["CKR_SESSION_CLOSED", pkcs11js.CKR_SESSION_CLOSED, true, false],
    ["CKR_USER_NOT_LOGGED_IN", pkcs11js.CKR_USER_NOT_LOGGED_IN, true, false],
    ["CKR_DEVICE_REMOVED", pkcs11js.CKR_DEVICE_REMOVED, true, true],
    ["CKR_TOKEN_NOT_PRESENT", pkcs11js.CKR_TOKEN_NOT_PRESENT, true, true],
    ["CKR_DEVICE_ERROR", pkcs11js.CKR_DEVICE_ERROR, true, true],
    ["CKR_CRYPTOKI_NOT_INITIALIZED", pkcs11js.CKR_CRYPTOKI_NOT_INITIALIZED, true, true],
    ["CKR_GENERAL_ERROR", pkcs11js.CKR_GENERAL_ERROR, false, false],
    ["CKR_KEY_HANDLE_INVALID", pkcs11js.CKR_KEY_HANDLE_INVALID, false, false],
  ])("%s: loss %s, reinitialise %s", (_name, code, loss, reinit) => {
    expect([isSessionLoss(error(code)), needsReinitialize(error(code))]).toEqual([loss, reinit]);
  });
});
