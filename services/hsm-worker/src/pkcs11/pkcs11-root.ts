// "Who wraps" on a PKCS#11 module: the root set on the token (a wrapping key per protection level and the
// MAC key, root-key.ts), looked up again whenever sessions were replaced; the format 2 tag, made with the
// MAC key; and RFC 5649 wraps of objects and raw bytes under a level's root. It never uses a key for an
// operation: the engines do (pkcs11-engine.ts in the HSM, software/node-engine.ts in the worker).
import { timingSafeEqual } from "node:crypto";
import * as pkcs11js from "pkcs11js";
import { ErrorCode, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { unwrapFailed } from "../backend";
import type { AcceptedRoots, CheckedKey } from "../backend";
import { kwpWrappedBytes } from "../key-spec";
import { joinFormat2, tagInput } from "../wrapped-format";
import type { Binding } from "../wrapped-format";
import { readAttributes } from "./attributes";
import { hasCode, hsmCall, hsmCallAsync, Pkcs11CallError } from "./errors";
import type { CallMode } from "./errors";
import { hsmMac } from "./hmac";
import { findOrCreateRootSet, findRootKeys, findRootSets, rootLabels } from "./root-key";
import type { RootSet } from "./root-key";
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
}

export class Pkcs11Root {
  /** Module epoch in which a missing root key means "gone for good" (see roots). */
  private rootMissingEpoch: number | undefined;
  /** Sessions opened and module epoch when the root handles were found (see roots). */
  private rootFoundAt: string;

  private constructor(
    private readonly pool: SessionPool,
    private readonly options: Pkcs11RootOptions,
    /** Undefined: the token had no root key and creating one was not asked for (fail closed). */
    private root: RootSet | undefined,
  ) {
    this.rootFoundAt = this.poolState();
  }

  /** Finds (or, when asked, creates) the root set on the pool's token. */
  static async open(pool: SessionPool, options: Pkcs11RootOptions): Promise<Pkcs11Root> {
    const root = await pool.run(async (s) => findOrCreateRootSet(pool.module.lib, s.handle, options.rootKeyLabel, options.createRootKey));
    return new Pkcs11Root(pool, options, root);
  }

  private get lib(): pkcs11js.PKCS11 {
    return this.pool.module.lib;
  }

  /** The root ids: "" for a missing root (fail closed) or no legacy root. */
  get ids(): AcceptedRoots {
    return { current: this.root?.id ?? "", legacy: this.root?.legacy?.id ?? "" };
  }

  get present(): boolean {
    return this.root !== undefined;
  }

  /** The wrapping root of a protection level (HSM material never goes under the SOFTWARE root). */
  levelRoot(session: PooledSession, level: kmsResources.ProtectionLevel): pkcs11js.Handle {
    const roots = this.roots(session);
    return level === kmsResources.ProtectionLevel.HSM ? roots.hsm : roots.software;
  }

  /** The format 2 blob of an RFC 5649 wrap: `kwp` with the tag that binds it to `binding`. */
  async seal(session: PooledSession, binding: Binding, kwp: Buffer): Promise<Buffer> {
    return joinFormat2(kwp, await this.tag(session, binding, kwp));
  }

  /** Wraps a generated object under its level's root and seals the result for `binding`. */
  async sealObject(session: PooledSession, binding: Binding, object: pkcs11js.Handle, outBytes: number, context: string): Promise<Buffer> {
    const root = this.levelRoot(session, binding.protectionLevel);
    const wrapped = await hsmCallAsync(`C_WrapKey(${context})`, () => this.lib.C_WrapKeyAsync(session.handle, KWP, root, object, Buffer.alloc(outBytes)));
    return this.seal(session, binding, Buffer.from(wrapped));
  }

  /**
   * The key to unwrap `checked` with: format 2 only after its tag matched the caller's version, spec and
   * level; format 1 (legacy root) as earlier releases did.
   */
  async unwrappingKey(session: PooledSession, checked: CheckedKey, field: string): Promise<pkcs11js.Handle> {
    if (checked.format === "legacy") {
      const legacy = this.roots(session).legacy;
      if (legacy === undefined) throw this.noRootKey("the legacy root key is no longer on the token");
      return legacy.handle;
    }
    const expected = await this.tag(session, checked, checked.kwp);
    if (expected.length !== checked.tag.length || !timingSafeEqual(expected, checked.tag)) throw unwrapFailed(field);
    return this.levelRoot(session, checked.protectionLevel);
  }

  /** Raw material (an imported key, a SOFTWARE key made in node:crypto) sealed under its level's root. */
  sealMaterial(material: Buffer, binding: Binding, label: string): Promise<Buffer> {
    return withSession(this.pool, async (session) => {
      const kwp = await this.wrapBytes(session, this.levelRoot(session, binding.protectionLevel), material, label);
      return this.seal(session, binding, kwp);
    });
  }

  /** The raw material of a SOFTWARE key, authenticated and unwrapped; the caller wipes it. */
  unwrapMaterial(checked: CheckedKey, field: string): Promise<Buffer> {
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
  private async tag(session: PooledSession, binding: Binding, kwp: Buffer): Promise<Buffer> {
    try {
      return await hsmMac(this.lib, session.handle, this.roots(session).mac, "sha256", tagInput(binding, kwp), this.options.callMode);
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
  private roots(session: PooledSession): RootSet {
    let root = this.root;
    if (root === undefined) throw this.noRootKey("the token has no root key and KMS_CREATE_ROOT_KEY is not true");
    if (this.rootFoundAt !== this.poolState()) {
      const id = root.id;
      const legacyId = root.legacy?.id;
      const found = findRootSets(this.lib, session.handle, rootLabels(this.options.rootKeyLabel)).find((k) => k.id === id);
      const legacy = legacyId === undefined ? undefined : findRootKeys(this.lib, session.handle, this.options.rootKeyLabel).find((k) => k.id === legacyId);
      if (found === undefined || (legacyId !== undefined && legacy === undefined)) {
        // The module may be showing a token that is gone: have the pool initialise it again once (and
        // retry). A token that is really absent then gives UNAVAILABLE until it is back; one that is
        // there without our root key (re-initialised or swapped) fails closed, and no new root key is made.
        const epoch = this.pool.module.epoch;
        if (this.rootMissingEpoch !== epoch) {
          this.rootMissingEpoch = epoch + 1;
          throw new Pkcs11CallError(`root key ${id} not found; reading the token again`, pkcs11js.CKR_TOKEN_NOT_RECOGNIZED);
        }
        throw this.noRootKey(`root key ${id} is no longer on the token`);
      }
      root = this.root = { ...found, legacy };
      this.rootFoundAt = this.poolState();
    }
    return root;
  }

  noRootKey(why: string): KmsError {
    return new KmsError(
      ErrorCode.RootKeyMismatch,
      `root key ${JSON.stringify(this.options.rootKeyLabel)} unavailable on token ${JSON.stringify(this.options.tokenLabel)}: ${why}; no key material is used or created`,
    );
  }
}
