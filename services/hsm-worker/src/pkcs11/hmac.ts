// HMAC in the HSM: generic secret keys generated there, the template they are unwrapped with, and C_Sign
// with CKM_SHA*_HMAC (also the tag of format 2 material, under the root set's MAC key).
import * as pkcs11js from "pkcs11js";
import { pkcs11Input } from "../bytes";
import { hsmCall, hsmCallAsync, hsmShortCall } from "./errors";
import type { CallMode } from "./errors";

const HMAC_MECHANISM = { sha256: pkcs11js.CKM_SHA256_HMAC, sha384: pkcs11js.CKM_SHA384_HMAC, sha512: pkcs11js.CKM_SHA512_HMAC };

/** A generic secret for HMAC, generated in the HSM; extractable only to leave wrapped. */
export function hsmGenerateHmacKey(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, bytes: number, label: string): Promise<pkcs11js.Handle> {
  return hsmCallAsync("C_GenerateKey(HMAC key)", () =>
    lib.C_GenerateKeyAsync(session, { mechanism: pkcs11js.CKM_GENERIC_SECRET_KEY_GEN }, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
      { type: pkcs11js.CKA_VALUE_LEN, value: bytes },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: true },
      { type: pkcs11js.CKA_SIGN, value: false },
      { type: pkcs11js.CKA_LABEL, value: label },
    ]),
  );
}

export const HMAC_UNWRAP_CLASS: pkcs11js.Template = [
  { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
  { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
];

export async function hsmMac(
  lib: pkcs11js.PKCS11,
  session: pkcs11js.Handle,
  key: pkcs11js.Handle,
  hash: "sha256" | "sha384" | "sha512",
  message: Uint8Array,
  mode: CallMode = "thread-pool",
): Promise<Buffer> {
  hsmCall("C_SignInit(HMAC)", () => lib.C_SignInit(session, { mechanism: HMAC_MECHANISM[hash] }, key));
  // No copy: VerifyMac wipes the expected MAC, and this is the only buffer that holds it.
  const input = pkcs11Input(message);
  const out = Buffer.alloc(64);
  return hsmShortCall(mode, "C_Sign(HMAC)", () => lib.C_Sign(session, input, out), () => lib.C_SignAsync(session, input, out));
}
