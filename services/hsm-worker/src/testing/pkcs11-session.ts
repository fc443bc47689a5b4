// Test support (not built): a private SoftHSM2 token with one logged-in read/write session on it, for
// tests that drive pkcs11js directly (the Wycheproof runs).
import * as pkcs11js from "pkcs11js";
import { Pkcs11Module } from "../pkcs11/module";
import { createTestToken } from "./softhsm-token";

export interface TestSession {
  lib: pkcs11js.PKCS11;
  session: pkcs11js.Handle;
  /** Closes the session, releases the module and removes the token. */
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
      pkcs11Module.release();
      token.remove();
    },
  };
}

/** The private half of an RSA key as PKCS#11 integers (big-endian, no leading zero bytes). */
export interface RsaPrivateComponents {
  modulus: Buffer;
  publicExponent: Buffer;
  privateExponent: Buffer;
  prime1: Buffer;
  prime2: Buffer;
  exponent1: Buffer;
  exponent2: Buffer;
  coefficient: Buffer;
}

/** Creates a sensitive session object for RSA decryption from known components. */
export function createRsaDecryptionKey(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, c: RsaPrivateComponents): pkcs11js.Handle {
  return lib.C_CreateObject(session, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_RSA },
    { type: pkcs11js.CKA_TOKEN, value: false },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_DECRYPT, value: true },
    { type: pkcs11js.CKA_MODULUS, value: c.modulus },
    { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: c.publicExponent },
    { type: pkcs11js.CKA_PRIVATE_EXPONENT, value: c.privateExponent },
    { type: pkcs11js.CKA_PRIME_1, value: c.prime1 },
    { type: pkcs11js.CKA_PRIME_2, value: c.prime2 },
    { type: pkcs11js.CKA_EXPONENT_1, value: c.exponent1 },
    { type: pkcs11js.CKA_EXPONENT_2, value: c.exponent2 },
    { type: pkcs11js.CKA_COEFFICIENT, value: c.coefficient },
  ]);
}
