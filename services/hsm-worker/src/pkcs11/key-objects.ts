// What every family shares in the HSM, dispatched to its file (aes.ts, hmac.ts, rsa.ts, ec.ts): generating a
// pair, reading its public key, the template an HSM-level key is unwrapped with, checking what came out,
// and signing.
import * as pkcs11js from "pkcs11js";
import { pkcs11Input } from "../bytes";
import { lowS, rawToDer } from "../asymmetric/ecdsa-signature";
import { digestInfo } from "../asymmetric/rsa-padding";
import type { SigningScheme, SignInput } from "../asymmetric/signing-scheme";
import type { KeyFamily } from "../key-spec";
import { AES_UNWRAP_TEMPLATE } from "./aes";
import { CKM_EDDSA, EC_KEY_PAIR_GEN, EC_UNWRAP_CLASS, ecFits, ecPublicKey, ecPublicTemplate } from "./ec";
import { hsmCall, hsmCallAsync, hsmShortCall } from "./errors";
import type { CallMode } from "./errors";
import { HMAC_UNWRAP_CLASS } from "./hmac";
import { RSA_KEY_PAIR_GEN, RSA_UNWRAP_CLASS, RSA_UNWRAP_USAGE, rsaFits, rsaPublicKey, rsaPublicTemplate, rsaSignMechanism } from "./rsa";

type PairFamily = Extract<KeyFamily, { kind: "rsa" | "ec" }>;

/**
 * Generates an RSA or EC pair in the HSM. The private key is sensitive and extractable only so that it
 * can leave wrapped (as PKCS#8); the caller wraps and destroys both objects.
 */
export async function hsmGenerateKeyPair(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, family: PairFamily, label: string): Promise<pkcs11js.KeyPair> {
  const [mechanism, publicTemplate] = family.kind === "rsa" ? [RSA_KEY_PAIR_GEN, rsaPublicTemplate(family.bits)] : [EC_KEY_PAIR_GEN, ecPublicTemplate(family.curve)];
  return hsmCallAsync("C_GenerateKeyPair(key material)", () =>
    lib.C_GenerateKeyPairAsync(
      session,
      mechanism,
      // The public key is a session object, used only to read the public key.
      [{ type: pkcs11js.CKA_TOKEN, value: false }, ...publicTemplate, { type: pkcs11js.CKA_LABEL, value: label }],
      [
        { type: pkcs11js.CKA_TOKEN, value: false },
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: true },
        { type: pkcs11js.CKA_EXTRACTABLE, value: true },
        { type: pkcs11js.CKA_SIGN, value: false },
        { type: pkcs11js.CKA_DECRYPT, value: false },
        { type: pkcs11js.CKA_LABEL, value: label },
      ],
    ),
  );
}

/** The SubjectPublicKeyInfo of a public key object. */
export function hsmPublicKey(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, publicKey: pkcs11js.Handle, family: KeyFamily): Buffer {
  if (family.kind === "rsa") return rsaPublicKey(lib, session, publicKey);
  if (family.kind === "ec") return ecPublicKey(lib, session, publicKey, family.curve);
  if (family.kind === "ed25519") return ecPublicKey(lib, session, publicKey, "ed25519");
  throw new RangeError(`no public key for ${family.kind}`);
}

/** Template for unwrapping an HSM-level key into a sensitive, non-extractable session object. */
export function hsmUnwrapTemplate(family: KeyFamily): pkcs11js.Template {
  if (family.kind === "aes") return AES_UNWRAP_TEMPLATE;
  const common: pkcs11js.Template = [
    { type: pkcs11js.CKA_TOKEN, value: false },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_SIGN, value: true },
  ];
  switch (family.kind) {
    case "hmac":
      return [...HMAC_UNWRAP_CLASS, ...common];
    case "rsa":
      return [...RSA_UNWRAP_CLASS, ...common, ...RSA_UNWRAP_USAGE];
    case "ec":
      return [...EC_UNWRAP_CLASS, ...common];
    default:
      throw new RangeError(`no unwrap template for ${family.kind}`);
  }
}

/**
 * Template for unwrapping an HSM-level EC key to agree (DeriveSharedSecret): as every HSM EC key, but it
 * cannot sign. CKA_DERIVE is false as the HSM root forces; hsmAllowDerive turns it on in the session object.
 */
export function hsmAgreementTemplate(): pkcs11js.Template {
  return [
    ...EC_UNWRAP_CLASS,
    { type: pkcs11js.CKA_TOKEN, value: false },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_SIGN, value: false },
  ];
}

/** The unwrapped object is the spec's size or curve (an HMAC key's length SoftHSM does not report). */
export function hsmObjectFits(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, handle: pkcs11js.Handle, family: KeyFamily): boolean {
  if (family.kind === "rsa") return rsaFits(lib, session, handle, family.bits);
  if (family.kind === "ec") return ecFits(lib, session, handle, family.curve);
  return family.kind === "hmac";
}

function signMechanism(scheme: SigningScheme): pkcs11js.Mechanism {
  if (scheme.kind === "rsa-pss" || scheme.kind === "rsa-pkcs1") return rsaSignMechanism(scheme);
  return { mechanism: scheme.kind === "ecdsa" ? pkcs11js.CKM_ECDSA : CKM_EDDSA };
}

/** Signs in the HSM; ECDSA comes back raw and is returned as DER (low-S for secp256k1). */
export async function hsmSign(
  lib: pkcs11js.PKCS11,
  session: pkcs11js.Handle,
  key: pkcs11js.Handle,
  scheme: SigningScheme,
  input: SignInput,
  mode: CallMode = "thread-pool",
): Promise<Buffer> {
  // PKCS#11 2.40 has no ML-DSA mechanism; no HSM-level ML-DSA key can exist (the module profiles refuse it).
  if (scheme.kind === "ml-dsa" || input.kind === "external-mu") throw new RangeError("ML-DSA cannot be used in a PKCS#11 2.40 module");
  const data =
    input.kind === "message" ? Buffer.from(input.message) : scheme.kind === "rsa-pkcs1" ? digestInfo(scheme.hash, input.digest) : Buffer.from(input.digest);
  hsmCall("C_SignInit", () => lib.C_SignInit(session, signMechanism(scheme), key));
  // 512 bytes hold an RSA-4096 signature, and everything smaller.
  const dataIn = pkcs11Input(data);
  const out = Buffer.alloc(512);
  // RSA takes about a millisecond in SoftHSM2: always off this thread.
  const signMode = scheme.kind === "rsa-pkcs1" || scheme.kind === "rsa-pss" ? "thread-pool" : mode;
  const signature = await hsmShortCall(signMode, "C_Sign", () => lib.C_Sign(session, dataIn, out), () => lib.C_SignAsync(session, dataIn, out));
  if (scheme.kind !== "ecdsa") return Buffer.from(signature);
  return rawToDer(scheme.curve === "secp256k1" ? lowS(signature, scheme.curve) : signature);
}
