// `node services/hsm-worker/dist/token-objects.js`: lists the token objects on the worker's token (class,
// label, id; never values) as JSON on stdout, in the worker's own environment (KMS_PKCS11_*). The
// reconciler (kms-api's reconcile.js) runs it to check that the root keys (pkcs11/root-key.ts) are the
// only objects there: the worker keeps generated and unwrapped keys as session objects, which die with
// their sessions.
import * as pkcs11js from "pkcs11js";
import { ConfigError, loadWorkerConfig } from "@kms/config";
import { readAttributes, ulong } from "./pkcs11/attributes";
import { checkpointKeyLabel } from "./pkcs11/checkpoint-key";
import { hasCode, hsmCall } from "./pkcs11/errors";
import { Pkcs11Module } from "./pkcs11/module";

export interface TokenObject {
  class: string;
  label: string;
  /** Hex of CKA_ID. */
  id: string;
}

const CLASS_NAMES: Record<number, string> = {
  [pkcs11js.CKO_SECRET_KEY]: "secret key",
  [pkcs11js.CKO_PRIVATE_KEY]: "private key",
  [pkcs11js.CKO_PUBLIC_KEY]: "public key",
  [pkcs11js.CKO_CERTIFICATE]: "certificate",
  [pkcs11js.CKO_DATA]: "data",
};

export function listTokenObjects(lib: pkcs11js.PKCS11, session: pkcs11js.Handle): TokenObject[] {
  hsmCall("C_FindObjectsInit(token objects)", () => lib.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_TOKEN, value: true }]));
  const handles: pkcs11js.Handle[] = [];
  try {
    for (;;) {
      const batch = hsmCall("C_FindObjects(token objects)", () => lib.C_FindObjects(session, 256));
      if (batch.length === 0) break;
      handles.push(...batch);
    }
  } finally {
    hsmCall("C_FindObjectsFinal(token objects)", () => lib.C_FindObjectsFinal(session));
  }
  return handles.map((handle) => {
    const a = readAttributes(lib, session, handle, [pkcs11js.CKA_CLASS, pkcs11js.CKA_LABEL, pkcs11js.CKA_ID], "token object");
    const cls = ulong(a.get(pkcs11js.CKA_CLASS));
    return { class: CLASS_NAMES[cls] ?? `0x${cls.toString(16)}`, label: a.get(pkcs11js.CKA_LABEL)?.toString("utf8") ?? "", id: a.get(pkcs11js.CKA_ID)?.toString("hex") ?? "" };
  });
}

function main(): void {
  const config = loadWorkerConfig();
  if (config.pkcs11 === undefined) throw new ConfigError("KMS_PKCS11_MODULE", "is required to list token objects");
  const p = config.pkcs11;
  const module = Pkcs11Module.open(p.module);
  try {
    const session = hsmCall("C_OpenSession", () => module.lib.C_OpenSession(module.findSlot(p.tokenLabel), pkcs11js.CKF_SERIAL_SESSION));
    try {
      hsmCall("C_Login(user)", () => module.lib.C_Login(session, pkcs11js.CKU_USER, p.pin));
    } catch (err) {
      if (!hasCode(err, pkcs11js.CKR_USER_ALREADY_LOGGED_IN)) throw err;
    }
    const objects = listTokenObjects(module.lib, session);
    process.stdout.write(JSON.stringify({ token: p.tokenLabel, rootKeyLabel: p.rootKeyLabel, checkpointKeyLabel: checkpointKeyLabel(p.rootKeyLabel), objects }) + "\n");
  } finally {
    module.finalize();
  }
}

if (require.main === module) {
  try {
    main();
  } catch (err) {
    process.stderr.write(`token-objects: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}
