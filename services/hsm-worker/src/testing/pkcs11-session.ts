// Test support (not built): a private SoftHSM2 token with one logged-in read/write session on it, for
// tests that drive pkcs11js directly (the Wycheproof runs).
import * as pkcs11js from "pkcs11js";
import { Pkcs11Module } from "../pkcs11/module";
import { createTestToken } from "./softhsm-token";

export interface TestSession {
  lib: pkcs11js.PKCS11;
  session: pkcs11js.Handle;
  /** Closes the session, finalizes the module and removes the token. */
  close(): void;
}

/** Call in beforeAll (it creates the token, so before any other PKCS#11 use in the file); close() in afterAll. */
export function openTestSession(label: string): TestSession {
  const token = createTestToken(label);
  const pkcs11Module = Pkcs11Module.open(token.module);
  const lib = pkcs11Module.lib;
  const session = lib.C_OpenSession(pkcs11Module.findSlot(token.label), pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  lib.C_Login(session, pkcs11js.CKU_USER, token.pin);
  return {
    lib,
    session,
    close: () => {
      lib.C_CloseSession(session);
      pkcs11Module.finalize();
      token.remove();
    },
  };
}
