// "Who wraps" on a PKCS#11 module: the root sets on the token (a wrapping key per protection level and the
// MAC key, root-key.ts), looked up again whenever sessions were replaced; the format 2 tag, made with the
// MAC key; and RFC 5649 wraps of objects and raw bytes under a level's root. It never uses a key for an
// operation: the engines do (pkcs11-engine.ts in the HSM, software/node-engine.ts in the worker).
//
// Several root sets at once, for root rotation (docs/operations.md): the current set wraps everything new;
// retiring sets (and extra current-labelled sets a stopped rotation left) only unwrap what names their id;
// the legacy root only unwraps format 1. Several replicas' workers share the token, so a worker reads the
// sets again when it meets a root id it does not know, when kms-api asks (GetStatus), and when the set it
// wraps with turns out to be retiring.
import { timingSafeEqual } from "node:crypto";
import * as pkcs11js from "pkcs11js";
import { ErrorCode, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { unwrapFailed } from "../backend";
import type { AcceptedRoots, CheckedKey, Rewrap, Sealed } from "../backend";
import { kwpWrappedBytes } from "../key-spec";
import { joinFormat2, tagInput } from "../wrapped-format";
import type { Binding } from "../wrapped-format";
import { readAttributes } from "./attributes";
import { hasCode, hsmCall, hsmCallAsync, Pkcs11CallError } from "./errors";
import type { CallMode } from "./errors";
import { hsmMac } from "./hmac";
import { checkRootSet, findOrCreateRootSet, findRootKeys, findRootSets, generateRootSet, relabelRootSet, retiringLabels, rootLabels } from "./root-key";
import type { RootKey, RootSet } from "./root-key";
import { hsmUnwrapTemplate } from "./key-objects";
import { wipe } from "../bytes";
import type { FileRoot } from "../software/file-root";
import type { PooledSession, SessionPool } from "./session-pool";
import { destroyObject, withSession } from "./with-session";

export const KWP: pkcs11js.Mechanism = { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD };

/** Codes with which an RFC 5649 unwrap reports a failed integrity check or a bad length. */
export const UNWRAP_REJECTED = [
  pkcs11js.CKR_WRAPPED_KEY_INVALID,
  pkcs11js.CKR_WRAPPED_KEY_LEN_RANGE,
  pkcs11js.CKR_ENCRYPTED_DATA_INVALID,
  pkcs11js.CKR_ENCRYPTED_DATA_LEN_RANGE,
  pkcs11js.CKR_GENERAL_ERROR,
];

/** Output room for a wrapped private key (an RSA-4096 PKCS#8 wraps to about 2.4 KB). */
export const MAX_WRAPPED_BYTES = 4096;

export interface Pkcs11RootOptions {
  tokenLabel: string;
  rootKeyLabel: string;
  /** Create the root set when the token has none (see findOrCreateRootSet). */
  createRootKey: boolean;
  callMode: CallMode;
  /**
   * A software root file (KMS_SOURCE_ROOT_KEY_FILE) of a worker that ran without an HSM: its SOFTWARE
   * material unwraps (both its ids, format 2 and 1) and re-wraps onto the current set; nothing new is ever
   * wrapped under it.
   */
  source?: FileRoot | undefined;
}

type SetHandles = Omit<RootSet, "legacy">;

/** What the token holds, as this worker last read it. */
interface RootState {
  current: SetHandles;
  /** Retiring sets and extra current-labelled ones: unwrap only. */
  others: Map<string, SetHandles>;
  legacy: RootKey | undefined;
}


/** Why HSM-level format 2 material stays under its root (measured in rotation-limits.test.ts). */
export const HSM_MATERIAL_STAYS =
  "HSM-level material is non-extractable under its /hsm root (CKA_UNWRAP_TEMPLATE; C_WrapKey answers CKR_KEY_UNEXTRACTABLE), so it cannot be wrapped under a new root: its root set is kept until no version names it";

/** At most one re-read of the token per this many ms for unknown root ids (a flood of bad ids costs nothing). */
const REFRESH_INTERVAL_MS = 250;

export class Pkcs11Root {
  /** Module epoch in which a missing root key means "gone for good" (see roots). */
  private rootMissingEpoch: number | undefined;
  /** Sessions opened and module epoch when the root handles were found (see roots). */
  private rootFoundAt: string;
  private lastRefresh = 0;

  private constructor(
    private readonly pool: SessionPool,
    private readonly options: Pkcs11RootOptions,
    /** Undefined: the token had no root key and creating one was not asked for (fail closed). */
    private state: RootState | undefined,
  ) {
    this.rootFoundAt = this.poolState();
  }

  /** Finds (or, when asked, creates) the root set on the pool's token, and every other set beside it. */
  static async open(pool: SessionPool, options: Pkcs11RootOptions): Promise<Pkcs11Root> {
    const state = await pool.run(async (s) => {
      const root = findOrCreateRootSet(pool.module.lib, s.handle, options.rootKeyLabel, options.createRootKey);
      return root === undefined ? undefined : readState(pool.module.lib, s.handle, options.rootKeyLabel, root.id, root.legacy?.id);
    });
    return new Pkcs11Root(pool, options, state);
  }

  private get lib(): pkcs11js.PKCS11 {
    return this.pool.module.lib;
  }

  /** The root ids: "" for a missing root (fail closed) or no legacy root. */
  get ids(): AcceptedRoots {
    const source = this.options.source?.ids;
    return {
      current: this.state?.current.id ?? "",
      legacy: this.state?.legacy?.id ?? "",
      others: [...(this.state?.others.keys() ?? []), ...(source === undefined ? [] : [source.current])],
      otherLegacy: source === undefined ? [] : [source.legacy],
    };
  }

  /** The source root file's ids (format 2, format 1), or none. */
  get sourceIds(): string[] {
    const source = this.options.source?.ids;
    return source === undefined ? [] : [source.current, source.legacy];
  }

  /** The source file root when `checked` names it; its material is SOFTWARE-level only. */
  private sourceOf(checked: CheckedKey, field: string): FileRoot | undefined {
    if (!this.sourceIds.includes(checked.rootKeyId)) return undefined;
    // A file root never held HSM-level material: a row saying so was not written by it.
    if (checked.protectionLevel === kmsResources.ProtectionLevel.HSM) throw unwrapFailed(field);
    return this.options.source;
  }

  /** Ids of the retiring sets on the token (for GetStatus). */
  get retiringIds(): string[] {
    return [...(this.state?.others.keys() ?? [])];
  }

  get present(): boolean {
    return this.state !== undefined;
  }

  /**
   * Reads the token's root sets again (a root id we do not know, or kms-api saying a rotation moved on).
   * True when what this worker holds changed. At most once per REFRESH_INTERVAL_MS unless `force`.
   */
  async refresh(force = false): Promise<boolean> {
    if (this.state === undefined) return false;
    const now = Date.now();
    if (!force && now - this.lastRefresh < REFRESH_INTERVAL_MS) return false;
    this.lastRefresh = now;
    const before = JSON.stringify(this.ids);
    await withSession(this.pool, async (session) => {
      this.reload(session);
    });
    return JSON.stringify(this.ids) !== before;
  }

  /**
   * Root rotation's switch (BeginRootRotation): makes a set other than `fromId` current, creating one when
   * there is none, and relabels `fromId` retiring. Each step is idempotent, so a run stopped part way
   * finishes on the next call: the new set is the extra current-labelled one a stopped run left.
   */
  beginRotation(fromId: string): Promise<{ current: string; retiring: string[] }> {
    return withSession(this.pool, async (session) => {
      const lib = this.lib;
      const labels = rootLabels(this.options.rootKeyLabel);
      const retiring = findRootSets(lib, session.handle, retiringLabels(this.options.rootKeyLabel));
      let current = findRootSets(lib, session.handle, labels);
      const from = current.find((s) => s.id === fromId);
      if (from === undefined && !retiring.some((s) => s.id === fromId)) throw this.noRootKey(`root key set ${fromId} is not on the token`);
      if (!current.some((s) => s.id !== fromId)) {
        generateRootSet(lib, session.handle, labels);
        current = findRootSets(lib, session.handle, labels);
      }
      const next = current.find((s) => s.id !== fromId)!;
      checkRootSet(lib, session.handle, next, labels);
      if (from !== undefined) relabelRootSet(lib, session.handle, from, retiringLabels(this.options.rootKeyLabel));
      this.state = readState(lib, session.handle, this.options.rootKeyLabel, next.id, this.state?.legacy?.id);
      this.rootFoundAt = this.poolState();
      return { current: next.id, retiring: [...this.state.others.keys()] };
    });
  }

  /** Destroys a retiring set (or the legacy root) and forgets it; false when the token no longer had it. */
  retire(id: string): Promise<boolean> {
    // The source root is a file the worker cannot destroy: reported retired, the operator deletes the file.
    if (id !== "" && this.sourceIds.includes(id)) return Promise.resolve(true);
    return withSession(this.pool, async (session) => {
      const lib = this.lib;
      const state = this.roots(session);
      if (id === "" || id === state.current.id) throw new KmsError(ErrorCode.RootKeyMismatch, `root_key_id: ${JSON.stringify(id)} is the current root set; only a retiring one can be retired`);
      const handles: pkcs11js.Handle[] = [];
      const set = findRootSets(lib, session.handle, retiringLabels(this.options.rootKeyLabel)).find((s) => s.id === id);
      if (set !== undefined) handles.push(set.hsm, set.software, set.mac);
      const legacy = findRootKeys(lib, session.handle, this.options.rootKeyLabel).find((k) => k.id === id);
      if (legacy !== undefined) handles.push(legacy.handle);
      for (const handle of handles) hsmCall("C_DestroyObject(retired root)", () => lib.C_DestroyObject(session.handle, handle));
      this.state = readState(lib, session.handle, this.options.rootKeyLabel, state.current.id, state.legacy?.id);
      this.rootFoundAt = this.poolState();
      return handles.length > 0;
    });
  }

  /**
   * Re-wraps one checked version under the current set, never letting material out of the worker: SOFTWARE
   * material through worker memory (wiped), format 1 HSM-level material inside the HSM. HSM-level format 2
   * material is retained (HSM_MATERIAL_STAYS), as is format 1 HSM-level Ed25519 (no format 2 form).
   */
  rewrap(checked: CheckedKey, field: string): Promise<Rewrap> {
    return withSession(this.pool, async (session) => {
      const state = this.roots(session);
      if (checked.rootKeyId === state.current.id) return { outcome: "current" };
      const source = this.sourceOf(checked, field);
      if (source !== undefined) {
        // Off the source file root: unwrapped in worker memory (after its tag matched), wrapped under the current /software root.
        const set = this.wrappingSet(session);
        const material = source.unwrapMaterial(checked, field);
        let kwp: Buffer;
        try {
          kwp = await this.wrapBytes(session, set.software, material, "");
        } finally {
          wipe(material);
        }
        return { outcome: "rewrapped", ...(await this.seal(session, set, checked, kwp)) };
      }
      const hsmLevel = checked.protectionLevel === kmsResources.ProtectionLevel.HSM;
      if (hsmLevel && checked.format === "v2") {
        await this.unwrappingKey(session, checked, field); // authenticates it, so a forged blob is BAD, not retained
        return { outcome: "retained", problem: HSM_MATERIAL_STAYS };
      }
      if (hsmLevel && checked.family.kind === "ed25519") {
        return { outcome: "retained", problem: "HSM-level Ed25519 material of an earlier release has no format 2 form on this module (it cannot wrap EdDSA keys): it stays under the legacy root" };
      }
      const from = await this.unwrappingKey(session, checked, field);
      const set = this.wrappingSet(session);
      const to = levelOf(set, checked.protectionLevel);
      let kwp: Buffer;
      if (hsmLevel) {
        kwp = await this.rewrapInHsm(session, from, to, checked, field);
      } else {
        const material = await this.unwrapBytes(session, from, checked.kwp, field);
        try {
          kwp = await this.wrapBytes(session, to, material, "");
        } finally {
          wipe(material);
        }
      }
      return { outcome: "rewrapped", ...(await this.seal(session, set, checked, kwp)) };
    });
  }

  /** Format 1 HSM-level material: into an extractable session object (the legacy root has no template), wrapped under the new /hsm root, destroyed. */
  private async rewrapInHsm(session: PooledSession, from: pkcs11js.Handle, to: pkcs11js.Handle, checked: CheckedKey, field: string): Promise<Buffer> {
    const template = [...hsmUnwrapTemplate(checked.family).filter((a) => a.type !== pkcs11js.CKA_EXTRACTABLE), { type: pkcs11js.CKA_EXTRACTABLE, value: true }];
    let object: pkcs11js.Handle;
    try {
      object = await hsmCallAsync("C_UnwrapKey(legacy material)", () => this.lib.C_UnwrapKeyAsync(session.handle, KWP, from, checked.kwp, template));
    } catch (err) {
      if (hasCode(err, ...UNWRAP_REJECTED, pkcs11js.CKR_TEMPLATE_INCONSISTENT, pkcs11js.CKR_FUNCTION_FAILED)) throw unwrapFailed(field);
      throw err;
    }
    try {
      const wrapped = await hsmCallAsync("C_WrapKey(legacy material)", () => this.lib.C_WrapKeyAsync(session.handle, KWP, to, object, Buffer.alloc(MAX_WRAPPED_BYTES)));
      return Buffer.from(wrapped);
    } finally {
      destroyObject(this.lib, session.handle, object);
    }
  }

  /**
   * The current set, for wrapping something new: first checks (one attribute read) that it was not marked
   * retiring by a rotation another worker ran, and reads the sets again if it was, so that nothing new is
   * wrapped under a set about to be destroyed. The caller wraps and tags with this one set.
   */
  private wrappingSet(session: PooledSession): SetHandles {
    const current = this.roots(session).current;
    const label = readAttributes(this.lib, session.handle, current.software, [pkcs11js.CKA_LABEL], "root key label").get(pkcs11js.CKA_LABEL)?.toString("utf8");
    if (label === rootLabels(this.options.rootKeyLabel).software) return current;
    this.reload(session);
    return this.roots(session).current;
  }

  /** No root key: refused before anything is generated. */
  requireRoot(session: PooledSession): void {
    this.roots(session);
  }

  /** The format 2 blob of an RFC 5649 wrap under `set`: `kwp` with the tag that binds it to `binding`. */
  private async seal(session: PooledSession, set: SetHandles, binding: Binding, kwp: Buffer): Promise<Sealed> {
    return { wrappedMaterial: joinFormat2(kwp, await this.tag(session, set.mac, binding, kwp)), rootKeyId: set.id };
  }

  /** Wraps a generated object under its level's root and seals the result for `binding`. */
  async sealObject(session: PooledSession, binding: Binding, object: pkcs11js.Handle, outBytes: number, context: string): Promise<Sealed> {
    const set = this.wrappingSet(session);
    const root = levelOf(set, binding.protectionLevel);
    const wrapped = await hsmCallAsync(`C_WrapKey(${context})`, () => this.lib.C_WrapKeyAsync(session.handle, KWP, root, object, Buffer.alloc(outBytes)));
    return this.seal(session, set, binding, Buffer.from(wrapped));
  }

  /**
   * The key to unwrap `checked` with: format 2 only after its tag matched the caller's version, spec and
   * level; format 1 (legacy root) as earlier releases did.
   */
  async unwrappingKey(session: PooledSession, checked: CheckedKey, field: string): Promise<pkcs11js.Handle> {
    const state = this.roots(session);
    // The source file has no key on the token: only HSM-level rows naming it get here, and it never held any.
    if (this.sourceIds.includes(checked.rootKeyId)) throw unwrapFailed(field);
    if (checked.format === "legacy") {
      if (state.legacy === undefined || state.legacy.id !== checked.rootKeyId) throw this.noRootKey("the legacy root key is no longer on the token");
      return state.legacy.handle;
    }
    const set = checked.rootKeyId === state.current.id ? state.current : state.others.get(checked.rootKeyId);
    if (set === undefined) throw this.noRootKey(`root key set ${checked.rootKeyId} is no longer on the token`);
    const expected = await this.tag(session, set.mac, checked, checked.kwp);
    if (expected.length !== checked.tag.length || !timingSafeEqual(expected, checked.tag)) throw unwrapFailed(field);
    return levelOf(set, checked.protectionLevel);
  }

  /** Raw material (an imported key, a SOFTWARE key made in node:crypto) sealed under its level's root. */
  sealMaterial(material: Buffer, binding: Binding, label: string): Promise<Sealed> {
    return withSession(this.pool, async (session) => {
      const set = this.wrappingSet(session);
      const kwp = await this.wrapBytes(session, levelOf(set, binding.protectionLevel), material, label);
      return this.seal(session, set, binding, kwp);
    });
  }

  /** The raw material of a SOFTWARE key, authenticated and unwrapped; the caller wipes it. */
  unwrapMaterial(checked: CheckedKey, field: string): Promise<Buffer> {
    const source = this.sourceOf(checked, field);
    if (source !== undefined) return Promise.resolve(source.unwrapMaterial(checked, field));
    return withSession(this.pool, async (session) => this.unwrapBytes(session, await this.unwrappingKey(session, checked, field), checked.kwp, field));
  }

  legacyWrap(material: Buffer, label: string): Promise<Buffer | undefined> {
    return withSession(this.pool, async (session) => {
      const legacy = this.roots(session).legacy;
      return legacy === undefined ? undefined : this.wrapBytes(session, legacy.handle, material, label);
    });
  }

  /**
   * Unwraps to raw bytes (SOFTWARE keys; format 1 HSM-level Ed25519) through a short-lived generic secret.
   * The HSM root refuses this (its unwrap template), so HSM-level format 2 material never gets here. The
   * caller wipes the bytes.
   */
  async unwrapBytes(session: PooledSession, root: pkcs11js.Handle, wrapped: Buffer, field: string): Promise<Buffer> {
    let handle: pkcs11js.Handle;
    try {
      handle = await hsmCallAsync("C_UnwrapKey(material)", () =>
        this.lib.C_UnwrapKeyAsync(session.handle, KWP, root, wrapped, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
          { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
          { type: pkcs11js.CKA_TOKEN, value: false },
          { type: pkcs11js.CKA_PRIVATE, value: true },
          { type: pkcs11js.CKA_SENSITIVE, value: false },
          { type: pkcs11js.CKA_EXTRACTABLE, value: true },
        ]),
      );
    } catch (err) {
      if (hasCode(err, ...UNWRAP_REJECTED)) throw unwrapFailed(field);
      throw err;
    }
    try {
      const value = readAttributes(this.lib, session.handle, handle, [pkcs11js.CKA_VALUE], "unwrapped material").get(pkcs11js.CKA_VALUE);
      if (value === undefined) throw unwrapFailed(field);
      return value;
    } finally {
      destroyObject(this.lib, session.handle, handle);
    }
  }

  /** RFC 5649 wrap of raw bytes under `root`, through a short-lived generic secret object. */
  private async wrapBytes(session: PooledSession, root: pkcs11js.Handle, material: Buffer, label: string): Promise<Buffer> {
    const object = hsmCall("C_CreateObject(material to wrap)", () =>
      this.lib.C_CreateObject(session.handle, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
        { type: pkcs11js.CKA_VALUE, value: material },
        { type: pkcs11js.CKA_TOKEN, value: false },
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: true },
        { type: pkcs11js.CKA_EXTRACTABLE, value: true },
        { type: pkcs11js.CKA_LABEL, value: label },
      ]),
    );
    try {
      const wrapped = await hsmCallAsync("C_WrapKey(material)", () =>
        this.lib.C_WrapKeyAsync(session.handle, KWP, root, object, Buffer.alloc(kwpWrappedBytes(material.length) + 16)),
      );
      return Buffer.from(wrapped);
    } finally {
      destroyObject(this.lib, session.handle, object);
    }
  }

  /** The tag over `binding` and `kwp`, made with the HSM-held MAC key. */
  private async tag(session: PooledSession, mac: pkcs11js.Handle, binding: Binding, kwp: Buffer): Promise<Buffer> {
    try {
      return await hsmMac(this.lib, session.handle, mac, "sha256", tagInput(binding, kwp), this.options.callMode);
    } catch (err) {
      // Like the roots' handles: an invalid MAC key handle means the login or the token changed, which is
      // a lost session for the pool (new sessions look the keys up again, and the call is retried once).
      if (hasCode(err, pkcs11js.CKR_KEY_HANDLE_INVALID, pkcs11js.CKR_OBJECT_HANDLE_INVALID)) {
        throw new Pkcs11CallError(`${(err as Error).message}, root key handles lost`, pkcs11js.CKR_USER_NOT_LOGGED_IN, { cause: err });
      }
      throw err;
    }
  }

  private poolState(): string {
    return `${this.pool.opened}/${this.pool.module.epoch}`;
  }

  /**
   * The root keys' handles. Looked up again whenever sessions were replaced: SoftHSM drops every object
   * handle of a slot (token objects too) when its last session closes, and all of them after C_Finalize.
   */
  private roots(session: PooledSession): RootState {
    const state = this.state;
    if (state === undefined) throw this.noRootKey("the token has no root key and KMS_CREATE_ROOT_KEY is not true");
    if (this.rootFoundAt !== this.poolState()) this.reload(session);
    return this.state!;
  }

  /**
   * Reads the sets again. The set this worker wrapped with may have become retiring (another worker
   * rotated): the token's current set then takes over, as long as one of the sets this worker knew is
   * still there; a token with none of them (re-initialised or swapped) fails closed, and no root is made.
   */
  private reload(session: PooledSession): void {
    const known = this.state;
    if (known === undefined) throw this.noRootKey("the token has no root key and KMS_CREATE_ROOT_KEY is not true");
    const lib = this.lib;
    const labels = rootLabels(this.options.rootKeyLabel);
    const current = findRootSets(lib, session.handle, labels);
    const all = [...current, ...findRootSets(lib, session.handle, retiringLabels(this.options.rootKeyLabel))];
    const knownIds = new Set([known.current.id, ...known.others.keys()]);
    const preferred = current.find((s) => s.id === known.current.id) ?? current[0];
    if (preferred === undefined || !all.some((s) => knownIds.has(s.id))) {
      // The module may be showing a token that is gone: have the pool initialise it again once (and
      // retry). A token that is really absent then gives UNAVAILABLE until it is back; one that is
      // there without our root key (re-initialised or swapped) fails closed, and no new root key is made.
      const epoch = this.pool.module.epoch;
      if (this.rootMissingEpoch !== epoch) {
        this.rootMissingEpoch = epoch + 1;
        throw new Pkcs11CallError(`root key ${known.current.id} not found; reading the token again`, pkcs11js.CKR_TOKEN_NOT_RECOGNIZED);
      }
      throw this.noRootKey(`root key ${known.current.id} is no longer on the token`);
    }
    if (preferred.id !== known.current.id) checkRootSet(lib, session.handle, preferred, labels);
    // The legacy root may be gone (a rotation retired it); one that was not there before is never adopted.
    this.state = readState(lib, session.handle, this.options.rootKeyLabel, preferred.id, known.legacy?.id);
    this.rootFoundAt = this.poolState();
  }

  noRootKey(why: string): KmsError {
    return new KmsError(
      ErrorCode.RootKeyMismatch,
      `root key ${JSON.stringify(this.options.rootKeyLabel)} unavailable on token ${JSON.stringify(this.options.tokenLabel)}: ${why}; no key material is used or created`,
    );
  }
}

/** The wrapping root of a protection level (HSM material never goes under the SOFTWARE root). */
function levelOf(set: SetHandles, level: kmsResources.ProtectionLevel): pkcs11js.Handle {
  return level === kmsResources.ProtectionLevel.HSM ? set.hsm : set.software;
}

/** Every set on the token with `currentId` current, and the legacy root `legacyId` if it is still there. */
function readState(lib: pkcs11js.PKCS11, session: pkcs11js.Handle, label: string, currentId: string, legacyId: string | undefined): RootState {
  const sets = [...findRootSets(lib, session, rootLabels(label)), ...findRootSets(lib, session, retiringLabels(label))];
  const current = sets.find((s) => s.id === currentId);
  if (current === undefined) throw new KmsError(ErrorCode.RootKeyMismatch, `root key set ${currentId} is not on the token`);
  const others = new Map(sets.filter((s) => s.id !== currentId).map((s) => [s.id, s]));
  const legacy = legacyId === undefined ? undefined : findRootKeys(lib, session, label).find((k) => k.id === legacyId);
  return { current, others, legacy };
}
