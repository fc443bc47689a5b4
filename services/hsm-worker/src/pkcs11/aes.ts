// AES in the HSM: key generation, the template AES keys are unwrapped with, and AES-GCM (CKM_AES_GCM) for
// PROTECTION_LEVEL_HSM keys. Output buffers are always large enough: CKR_BUFFER_TOO_SMALL would leave the
// operation active and the session unusable.
import { randomBytes } from "node:crypto";
import * as pkcs11js from "pkcs11js";
import { invalidCiphertext } from "@kms/errors";
import { asBuffer, pkcs11Input } from "../bytes";
import { checkGcmSizes, IV_BYTES, splitSealed, TAG_BYTES } from "../software/aes-gcm";
import { hasCode, hsmCall, hsmCallAsync, hsmShortCall, isSessionLoss } from "./errors";
import type { CallMode } from "./errors";

/**
 * An AES key generated inside the HSM, sensitive; extractable only so that it can leave wrapped (under
 * either level's root), then destroyed by the caller.
 */
export function generateAesKey(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, bytes: number, label: string): Promise<pkcs11js.Handle> {
  return hsmCallAsync("C_GenerateKey(key material)", () =>
    lib.C_GenerateKeyAsync(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_VALUE_LEN, value: bytes },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: true },
      { type: pkcs11js.CKA_ENCRYPT, value: false },
      { type: pkcs11js.CKA_DECRYPT, value: false },
      { type: pkcs11js.CKA_LABEL, value: label },
    ]),
  );
}

/** Template for unwrapping an HSM-level AES key into a session object that encrypts and decrypts. */
export const AES_UNWRAP_TEMPLATE: pkcs11js.Template = [
  { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
  { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
  { type: pkcs11js.CKA_TOKEN, value: false },
  { type: pkcs11js.CKA_PRIVATE, value: true },
  { type: pkcs11js.CKA_SENSITIVE, value: true },
  { type: pkcs11js.CKA_EXTRACTABLE, value: false },
  { type: pkcs11js.CKA_ENCRYPT, value: true },
  { type: pkcs11js.CKA_DECRYPT, value: true },
];

function gcmMechanism(iv: Buffer, aad: Uint8Array): pkcs11js.Mechanism {
  const parameter: pkcs11js.AesGCM = {
    type: pkcs11js.CK_PARAMS_AES_GCM,
    iv,
    aad: asBuffer(aad),
    ivBits: IV_BYTES * 8,
    tagBits: TAG_BYTES * 8,
  };
  return { mechanism: pkcs11js.CKM_AES_GCM, parameter };
}

/** Encrypts with a caller-chosen IV. Production code uses hsmSealGcm (fresh IV); this exists for test vectors. */
export async function hsmSealGcmWithIv(
  lib: pkcs11js.PKCS11,
  session: pkcs11js.Handle,
  key: pkcs11js.Handle,
  iv: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
  mode: CallMode = "thread-pool",
): Promise<Buffer> {
  checkGcmSizes(iv.length);
  const ivBuffer = Buffer.from(iv);
  hsmCall("C_EncryptInit(AES-GCM)", () => lib.C_EncryptInit(session, gcmMechanism(ivBuffer, aad), key));
  const input = pkcs11Input(plaintext);
  const out = Buffer.alloc(plaintext.length + TAG_BYTES);
  const body = await hsmShortCall(mode, "C_Encrypt(AES-GCM)", () => lib.C_Encrypt(session, input, out), () => lib.C_EncryptAsync(session, input, out));
  return Buffer.concat([ivBuffer, body]);
}

export function hsmSealGcm(
  lib: pkcs11js.PKCS11,
  session: pkcs11js.Handle,
  key: pkcs11js.Handle,
  plaintext: Uint8Array,
  aad: Uint8Array,
  mode: CallMode = "thread-pool",
): Promise<Buffer> {
  return hsmSealGcmWithIv(lib, session, key, randomBytes(IV_BYTES), plaintext, aad, mode);
}

/** Decrypts `sealed` in the HSM; a wrong tag, AAD or length is invalidCiphertext(). */
export async function hsmOpenGcm(
  lib: pkcs11js.PKCS11,
  session: pkcs11js.Handle,
  key: pkcs11js.Handle,
  sealed: Uint8Array,
  aad: Uint8Array,
  mode: CallMode = "thread-pool",
): Promise<Buffer> {
  const { iv, body } = splitSealed(sealed);
  hsmCall("C_DecryptInit(AES-GCM)", () => lib.C_DecryptInit(session, gcmMechanism(Buffer.from(iv), aad), key));
  const out = Buffer.alloc(body.length);
  try {
    return await hsmShortCall(mode, "C_Decrypt(AES-GCM)", () => lib.C_Decrypt(session, body, out), () => lib.C_DecryptAsync(session, body, out));
  } catch (err) {
    out.fill(0);
    if (isSessionLoss(err)) throw err;
    // SoftHSM reports a failed tag check as CKR_GENERAL_ERROR; the standard says CKR_ENCRYPTED_DATA_INVALID.
    if (hasCode(err, pkcs11js.CKR_GENERAL_ERROR, pkcs11js.CKR_ENCRYPTED_DATA_INVALID, pkcs11js.CKR_ENCRYPTED_DATA_LEN_RANGE)) {
      throw invalidCiphertext();
    }
    throw err;
  }
}
