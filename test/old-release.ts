// The release before format 2, for tests of what it left behind (legacy-material.test.ts, root-rotation.test.ts):
// its token (one root key without an unwrap template, bare RFC 5649 wraps under it) and its ciphertexts.
import { spawnSync } from "node:child_process";
import { createCipheriv, randomBytes } from "node:crypto";
import path from "node:path";
import { assembleBlob, buildAad, encodeHeader } from "@kms/ciphertext";

const REPO = path.resolve(__dirname, "..");

/**
 * Run with the worker's environment while the worker is stopped: empties the token, makes the old
 * release's root key (its generateRootKey template) and wraps each material under it as that release
 * did (C_WrapKey, CKM_AES_KEY_WRAP_PAD, of an object holding the raw key or PKCS#8).
 */
export const OLD_RELEASE_TOKEN = `
const pkcs11js = require("pkcs11js");
const fs = require("node:fs");
const crypto = require("node:crypto");
const lib = new pkcs11js.PKCS11();
lib.load(process.env.KMS_PKCS11_MODULE);
lib.C_Initialize();
try {
  const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === process.env.KMS_PKCS11_TOKEN_LABEL);
  const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  lib.C_Login(session, pkcs11js.CKU_USER, fs.readFileSync(process.env.KMS_PKCS11_PIN_FILE, "utf8").replace(/\\n$/, ""));
  lib.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_TOKEN, value: true }]);
  for (const h of lib.C_FindObjects(session, 64)) lib.C_DestroyObject(session, h);
  lib.C_FindObjectsFinal(session);
  const id = crypto.randomBytes(16);
  const root = lib.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
    { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_WRAP, value: true },
    { type: pkcs11js.CKA_UNWRAP, value: true },
    { type: pkcs11js.CKA_ENCRYPT, value: false },
    { type: pkcs11js.CKA_DECRYPT, value: false },
    { type: pkcs11js.CKA_SIGN, value: false },
    { type: pkcs11js.CKA_VERIFY, value: false },
    { type: pkcs11js.CKA_LABEL, value: process.env.KMS_ROOT_KEY_LABEL || "kms-root-wrapping-key" },
    { type: pkcs11js.CKA_ID, value: id },
  ]);
  const wrapped = JSON.parse(process.env.LEGACY_MATERIAL).map((hex) => {
    const object = lib.C_CreateObject(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
      { type: pkcs11js.CKA_VALUE, value: Buffer.from(hex, "hex") },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: true },
    ]);
    const out = lib.C_WrapKey(session, { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD }, root, object, Buffer.alloc(4096));
    lib.C_DestroyObject(session, object);
    return Buffer.from(out).toString("hex");
  });
  process.stdout.write(JSON.stringify({ rootKeyId: id.toString("hex"), wrapped }));
} finally {
  lib.C_Finalize();
}
`;

/**
 * Runs OLD_RELEASE_TOKEN with the worker's environment (the worker stopped): the legacy root's id and each
 * material's format 1 wrap.
 */
export function makeOldReleaseToken(workerEnv: NodeJS.ProcessEnv, materials: Buffer[]): { rootKeyId: string; wrapped: Buffer[] } {
  const run = spawnSync(process.execPath, ["-e", OLD_RELEASE_TOKEN], {
    cwd: REPO,
    env: { ...workerEnv, LEGACY_MATERIAL: JSON.stringify(materials.map((m) => m.toString("hex"))) },
    encoding: "utf8",
  });
  if (run.status !== 0) throw new Error(`old release token setup failed: ${run.stderr}`);
  const made = JSON.parse(run.stdout) as { rootKeyId: string; wrapped: string[] };
  return { rootKeyId: made.rootKeyId, wrapped: made.wrapped.map((h) => Buffer.from(h, "hex")) };
}

/** The old release's ciphertext blob: header ‖ AES-256-GCM under `material` with AAD over the header and context. */
export function oldCiphertext(material: Buffer, keyVersionId: string, plaintext: string, context: Record<string, string>): Buffer {
  const header = encodeHeader(keyVersionId);
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", material, iv);
  cipher.setAAD(buildAad(header, context));
  const ct = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return assembleBlob(header, Buffer.concat([iv, ct, cipher.getAuthTag()]));
}

