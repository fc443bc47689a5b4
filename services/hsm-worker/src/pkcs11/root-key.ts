// The root wrapping key: an AES-256 token object that never leaves the HSM (sensitive, not extractable)
// and can only wrap and unwrap. Its id (hex of CKA_ID, random at creation) tells which root wrapped what.
import { randomBytes } from "node:crypto";
import * as pkcs11js from "pkcs11js";
import { InternalError } from "@kms/errors";
import { bool, readAttributes, ulong } from "./attributes";
import { hsmCall, hsmCallAsync } from "./errors";

export interface RootKey {
  handle: pkcs11js.Handle;
  /** Hex of CKA_ID. */
  id: string;
}

/** Every root key labelled `label` on the token, with its id. */
export function findRootKeys(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, label: string): RootKey[] {
  const template = [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_LABEL, value: label },
  ];
  hsmCall("C_FindObjectsInit(root key)", () => lib.C_FindObjectsInit(session, template));
  let handles: pkcs11js.Handle[];
  try {
    handles = hsmCall("C_FindObjects(root key)", () => lib.C_FindObjects(session, 16));
  } finally {
    hsmCall("C_FindObjectsFinal(root key)", () => lib.C_FindObjectsFinal(session));
  }
  return handles.map((handle) => {
    const id = readAttributes(lib, session, handle, [pkcs11js.CKA_ID], "root key id").get(pkcs11js.CKA_ID);
    return { handle, id: id === undefined ? "" : id.toString("hex") };
  });
}

/** Refuses a root key that could leave the HSM or cannot wrap: better no worker than a weak root. */
function checkRootKey(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, key: RootKey, label: string): RootKey {
  const a = readAttributes(
    lib,
    session,
    key.handle,
    [pkcs11js.CKA_KEY_TYPE, pkcs11js.CKA_SENSITIVE, pkcs11js.CKA_EXTRACTABLE, pkcs11js.CKA_WRAP, pkcs11js.CKA_UNWRAP],
    "root key attributes",
  );
  const problems: string[] = [];
  if (ulong(a.get(pkcs11js.CKA_KEY_TYPE)) !== pkcs11js.CKK_AES) problems.push("not an AES key");
  if (!bool(a.get(pkcs11js.CKA_SENSITIVE))) problems.push("CKA_SENSITIVE is false");
  if (bool(a.get(pkcs11js.CKA_EXTRACTABLE))) problems.push("CKA_EXTRACTABLE is true");
  if (!bool(a.get(pkcs11js.CKA_WRAP)) || !bool(a.get(pkcs11js.CKA_UNWRAP))) problems.push("cannot wrap and unwrap");
  if (key.id === "") problems.push("has no CKA_ID");
  if (problems.length > 0) throw new InternalError(`root key ${JSON.stringify(label)} is unusable: ${problems.join(", ")}`);
  return key;
}

async function generateRootKey(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, label: string): Promise<RootKey> {
  const id = randomBytes(16);
  const handle = await hsmCallAsync("C_GenerateKey(root key)", () =>
    lib.C_GenerateKeyAsync(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
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
      { type: pkcs11js.CKA_LABEL, value: label },
      { type: pkcs11js.CKA_ID, value: id },
    ]),
  );
  return { handle, id: id.toString("hex") };
}

/**
 * Finds the root key labelled `label`. When the token has none, creates one only if `create` is true
 * (KMS_CREATE_ROOT_KEY: the first start of a new deployment); otherwise returns undefined and the worker
 * fails closed. The worker has no database, so it cannot tell a new token from one that was
 * re-initialised (or swapped) under existing data: making a fresh root key then would silently strand
 * every stored version and start wrapping new material under a key no backup knows. Creating one must
 * therefore be asked for.
 */
export async function findOrCreateRootKey(
  lib: pkcs11js.PKCS11,
  session: pkcs11js.Handle,
  label: string,
  create = true,
): Promise<RootKey | undefined> {
  const found = findRootKeys(lib, session, label);
  const only = found[0];
  if (found.length > 1) {
    throw new InternalError(`${found.length} keys on the token are labelled ${JSON.stringify(label)}; keep exactly one`);
  }
  if (only !== undefined) return checkRootKey(lib, session, only, label);
  if (!create) return undefined;
  const created = await generateRootKey(lib, session, label);
  // Two workers sharing an HSM may each have created one just now: the lowest CKA_ID wins everywhere,
  // and a loser destroys its own before wrapping anything with it.
  const all = findRootKeys(lib, session, label).sort((a, b) => a.id.localeCompare(b.id));
  const winner = all[0] ?? created;
  if (winner.id !== created.id) hsmCall("C_DestroyObject(losing root key)", () => lib.C_DestroyObject(session, created.handle));
  return checkRootKey(lib, session, winner, label);
}
