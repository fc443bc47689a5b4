// The root keys: token objects that never leave the HSM (sensitive, not extractable). A root key id is
// the hex of CKA_ID, random at creation; it tells which root wrapped what.
//
// One root per protection level, rather than one root with CKA_UNWRAP_TEMPLATE: a template forcing
// CKA_SENSITIVE=true and CKA_EXTRACTABLE=false is what keeps HSM material inside the HSM even for a PIN
// holder (SoftHSM 2.6.1 refuses C_UnwrapKey with any other template), but SOFTWARE material has to be
// unwrapped readable, so it cannot come through a root that has one. The root set is:
//   `${label}/hsm`      AES-256 wrap/unwrap, CKA_UNWRAP_TEMPLATE = HSM_UNWRAP_TEMPLATE: HSM-level material;
//   `${label}/software` AES-256 wrap/unwrap, no template: SOFTWARE material (read into the worker anyway);
//   `${label}/mac`      HMAC-SHA256 key that binds each blob to its version, spec and level
//                       (wrapped-format.ts), so no blob can be presented as another level or spec;
// all three with the same CKA_ID, which is the root key id. The single root key of earlier releases
// (label `${label}`, no template) is the legacy root: found, never created, and only used to unwrap the
// format 1 rows made under it until they are re-wrapped (see hsm-backend.ts).
import { randomBytes } from "node:crypto";
import * as pkcs11js from "pkcs11js";
import { InternalError } from "@kms/errors";
import { bool, readAttributes, ulong } from "./attributes";
import { hasCode, hsmCall, Pkcs11CallError } from "./errors";

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

/** What the HSM root forces on everything it unwraps (every worker template for it must say the same). */
export const HSM_UNWRAP_TEMPLATE: pkcs11js.Template = [
  { type: pkcs11js.CKA_SENSITIVE, value: true },
  { type: pkcs11js.CKA_EXTRACTABLE, value: false },
  // No C_DeriveKey from HSM material: a derivation that concatenates keys could copy it out.
  { type: pkcs11js.CKA_DERIVE, value: false },
];

/** `template` with HSM_UNWRAP_TEMPLATE's attributes set to its values (SoftHSM wants each one present). */
export function forcedHsmTemplate(template: pkcs11js.Template): pkcs11js.Template {
  const forced = new Set(HSM_UNWRAP_TEMPLATE.map((a) => a.type));
  return [...template.filter((a) => !forced.has(a.type)), ...HSM_UNWRAP_TEMPLATE];
}

export interface RootLabels {
  hsm: string;
  software: string;
  mac: string;
}

export function rootLabels(label: string): RootLabels {
  return { hsm: `${label}/hsm`, software: `${label}/software`, mac: `${label}/mac` };
}

/**
 * Labels of a root set being retired by a root rotation (docs/operations.md, "Root rotation"): it still
 * unwraps what names its id, and never wraps anything new. Retirement destroys it.
 */
export function retiringLabels(label: string): RootLabels {
  return rootLabels(`${label}/retiring`);
}

/** The root keys of one id (see the top of this file), and the legacy root when the token has it. */
export interface RootSet {
  id: string;
  hsm: pkcs11js.Handle;
  software: pkcs11js.Handle;
  mac: pkcs11js.Handle;
  legacy: RootKey | undefined;
}

function generateWrappingRoot(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, label: string, id: Buffer, unwrapTemplate?: pkcs11js.Template): pkcs11js.Handle {
  const template: pkcs11js.Template = [
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
    { type: pkcs11js.CKA_DERIVE, value: false },
    { type: pkcs11js.CKA_LABEL, value: label },
    { type: pkcs11js.CKA_ID, value: id },
  ];
  // A nested template needs patches/pkcs11js+2.1.7.patch, and the synchronous call (see that patch).
  if (unwrapTemplate !== undefined) template.push({ type: pkcs11js.CKA_UNWRAP_TEMPLATE, value: unwrapTemplate as unknown as Buffer });
  return hsmCall(`C_GenerateKey(${label})`, () => lib.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, template));
}

function generateMacKey(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, label: string, id: Buffer): pkcs11js.Handle {
  return hsmCall(`C_GenerateKey(${label})`, () =>
    lib.C_GenerateKey(session, { mechanism: pkcs11js.CKM_GENERIC_SECRET_KEY_GEN }, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
      { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: false },
      { type: pkcs11js.CKA_SIGN, value: true },
      { type: pkcs11js.CKA_VERIFY, value: false },
      { type: pkcs11js.CKA_WRAP, value: false },
      { type: pkcs11js.CKA_UNWRAP, value: false },
      { type: pkcs11js.CKA_DERIVE, value: false },
      { type: pkcs11js.CKA_LABEL, value: label },
      { type: pkcs11js.CKA_ID, value: id },
    ]),
  );
}

/** Creates a root set and returns its id; on a failure part way, destroys what it made. */
export function generateRootSet(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, labels: RootLabels): string {
  const id = randomBytes(16);
  const made: pkcs11js.Handle[] = [];
  try {
    made.push(generateWrappingRoot(lib, session, labels.hsm, id, HSM_UNWRAP_TEMPLATE));
    made.push(generateWrappingRoot(lib, session, labels.software, id));
    made.push(generateMacKey(lib, session, labels.mac, id));
  } catch (err) {
    for (const handle of made) hsmCall("C_DestroyObject(partial root set)", () => lib.C_DestroyObject(session, handle));
    throw err;
  }
  return id.toString("hex");
}

/** Complete root sets on the token, lowest id first; an id with a missing member is left out. */
export function findRootSets(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, labels: RootLabels): Omit<RootSet, "legacy">[] {
  const software = new Map(findRootKeys(lib, session, labels.software).map((k) => [k.id, k.handle]));
  const mac = new Map(findRootKeys(lib, session, labels.mac).map((k) => [k.id, k.handle]));
  const sets: Omit<RootSet, "legacy">[] = [];
  for (const h of findRootKeys(lib, session, labels.hsm)) {
    const s = software.get(h.id);
    const m = mac.get(h.id);
    if (h.id !== "" && s !== undefined && m !== undefined) sets.push({ id: h.id, hsm: h.handle, software: s, mac: m });
  }
  return sets.sort((a, b) => a.id.localeCompare(b.id));
}

/** Sets CKA_LABEL of a root set's three objects: how a rotation marks a set retiring. */
export function relabelRootSet(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, set: Omit<RootSet, "legacy">, labels: RootLabels): void {
  for (const [handle, label] of [
    [set.hsm, labels.hsm],
    [set.software, labels.software],
    [set.mac, labels.mac],
  ] as const) {
    hsmCall(`C_SetAttributeValue(${label})`, () => lib.C_SetAttributeValue(session, handle, [{ type: pkcs11js.CKA_LABEL, value: label }]));
  }
}

/** Checks a root set found on the token as findOrCreateRootSet does (roots made by another worker, too). */
export function checkRootSet(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, set: Omit<RootSet, "legacy">, labels: RootLabels): void {
  checkRootKey(lib, session, { handle: set.hsm, id: set.id }, labels.hsm);
  checkRootKey(lib, session, { handle: set.software, id: set.id }, labels.software);
  checkMacKey(lib, session, set.mac, labels.mac);
  checkUnwrapTemplateEnforced(lib, session, set.hsm, labels.hsm);
}

/** Refuses a MAC key that could leave the HSM or cannot sign. */
function checkMacKey(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, handle: pkcs11js.Handle, label: string): void {
  const a = readAttributes(lib, session, handle, [pkcs11js.CKA_KEY_TYPE, pkcs11js.CKA_SENSITIVE, pkcs11js.CKA_EXTRACTABLE, pkcs11js.CKA_SIGN], "MAC key attributes");
  const problems: string[] = [];
  if (ulong(a.get(pkcs11js.CKA_KEY_TYPE)) !== pkcs11js.CKK_GENERIC_SECRET) problems.push("not a generic secret");
  if (!bool(a.get(pkcs11js.CKA_SENSITIVE))) problems.push("CKA_SENSITIVE is false");
  if (bool(a.get(pkcs11js.CKA_EXTRACTABLE))) problems.push("CKA_EXTRACTABLE is true");
  if (!bool(a.get(pkcs11js.CKA_SIGN))) problems.push("cannot sign");
  if (problems.length > 0) throw new InternalError(`MAC key ${JSON.stringify(label)} is unusable: ${problems.join(", ")}`);
}

/**
 * Proves that the HSM root enforces its unwrap template on this module, now: a throwaway key wrapped
 * under it must NOT unwrap as a readable object. A root made without the template (an unpatched
 * pkcs11js, a module that ignores CKA_UNWRAP_TEMPLATE) fails here, and the worker does not start.
 */
export function checkUnwrapTemplateEnforced(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, hsmRoot: pkcs11js.Handle, label: string): void {
  const kwp = { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD };
  const probe = hsmCall("C_GenerateKey(unwrap template probe)", () =>
    lib.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_VALUE_LEN, value: 16 },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: true },
    ]),
  );
  let wrapped: Buffer;
  try {
    wrapped = hsmCall("C_WrapKey(unwrap template probe)", () => lib.C_WrapKey(session, kwp, hsmRoot, probe, Buffer.alloc(64)));
  } finally {
    hsmCall("C_DestroyObject(unwrap template probe)", () => lib.C_DestroyObject(session, probe));
  }
  let readable: pkcs11js.Handle;
  try {
    readable = hsmCall("C_UnwrapKey(unwrap template probe)", () =>
      lib.C_UnwrapKey(session, kwp, hsmRoot, wrapped, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
        { type: pkcs11js.CKA_TOKEN, value: false },
        { type: pkcs11js.CKA_SENSITIVE, value: false },
        { type: pkcs11js.CKA_EXTRACTABLE, value: true },
        { type: pkcs11js.CKA_DERIVE, value: false },
      ]),
    );
  } catch (err) {
    if (hasCode(err, pkcs11js.CKR_TEMPLATE_INCONSISTENT)) return;
    throw err;
  }
  hsmCall("C_DestroyObject(unwrap template probe)", () => lib.C_DestroyObject(session, readable));
  throw new InternalError(`root key ${JSON.stringify(label)} does not enforce CKA_UNWRAP_TEMPLATE: HSM material could be unwrapped readable; refusing to use it`);
}

/**
 * Finds the root set for `label` and the legacy root `label`, if any. When the token has no root set,
 * creates one if `create` is true (KMS_CREATE_ROOT_KEY: the first start of a new deployment) or if the
 * token holds the legacy root (an upgrade: the legacy root shows this is the deployment's own token);
 * otherwise returns undefined and the worker fails closed. The worker has no database, so it cannot tell
 * a new token from one that was re-initialised (or swapped) under existing data: making fresh roots then
 * would silently strand every stored version and start wrapping new material under keys no backup knows.
 * Creating them must therefore be asked for.
 */
export function findOrCreateRootSet(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, label: string, create = true): RootSet | undefined {
  const labels = rootLabels(label);
  const legacyKeys = findRootKeys(lib, session, label);
  if (legacyKeys.length > 1) {
    throw new InternalError(`${legacyKeys.length} keys on the token are labelled ${JSON.stringify(label)}; keep exactly one`);
  }
  const legacy = legacyKeys[0] === undefined ? undefined : checkRootKey(lib, session, legacyKeys[0], label);
  // Several sets under the current labels: a root rotation stopped between making the new set and marking
  // the old one retiring (BeginRootRotation finishes it). The lowest id wraps meanwhile; all of them unwrap.
  let sets = findRootSets(lib, session, labels);
  if (sets.length === 0) {
    if (!create && legacy === undefined) return undefined;
    const created = generateRootSet(lib, session, labels);
    // Two workers sharing an HSM may each have created one just now: the lowest CKA_ID wins everywhere,
    // and a loser destroys its own before wrapping anything with it.
    sets = findRootSets(lib, session, labels);
    for (const loser of sets.slice(1).filter((s) => s.id === created)) {
      for (const handle of [loser.hsm, loser.software, loser.mac]) hsmCall("C_DestroyObject(losing root set)", () => lib.C_DestroyObject(session, handle));
    }
  }
  const set = sets[0];
  if (set === undefined) throw new InternalError(`root key set ${JSON.stringify(labels.hsm)} is incomplete on the token`);
  checkRootSet(lib, session, set, labels);
  return { ...set, legacy };
}
