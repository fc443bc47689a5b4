// The PKCS#11 backend: HSM-level material is generated in the HSM and leaves it only wrapped under the HSM
// root, whose CKA_UNWRAP_TEMPLATE keeps it sensitive and non-extractable whoever unwraps it; SOFTWARE
// material other than AES comes from node:crypto and is wrapped under the SOFTWARE root (root-key.ts).
// Every blob is format 2 (wrapped-format.ts): its tag, made with the HSM-held MAC key, binds it to its key
// version, spec and level, and is checked before anything is unwrapped. HSM keys are unwrapped into
// sensitive, non-extractable session objects and used there; SOFTWARE keys are unwrapped into the worker
// as KeyObjects. Both kinds are cached (LRU) by version id, spec and level, and compared by wrapped bytes.
//
// Format 1 rows (a bare RFC 5649 wrap under the legacy root of earlier releases) are still used as those
// releases used them, level and spec taken from the caller, until issue 22's root rotation re-wraps them.
import { createSecretKey, timingSafeEqual } from "node:crypto";
import type { KeyObject } from "node:crypto";
import * as pkcs11js from "pkcs11js";
import { status } from "@grpc/grpc-js";
import { ErrorCode, InternalError, invalidArgument, KmsError, unavailable } from "@kms/errors";
import { hsm, kmsResources } from "@kms/proto";
import { oaepHash } from "../asymmetric/oaep";
import { signingScheme, signInput } from "../asymmetric/signing-scheme";
import type { ProtoSignInput } from "../asymmetric/signing-scheme";
import type { Backend, BackendStatus, CheckedKey, GeneratedKey } from "../backend";
import { checkWrappedKey, requireFamily, unwrapFailed } from "../backend";
import type { AcceptedRoots } from "../backend";
import { asBuffer, wipe } from "../bytes";
import { LruCache, unwrappedKeySlot } from "../handle-cache";
import { checkProtectionLevel, keyFamily, keySpecName, kwpWrappedBytes } from "../key-spec";
import type { KeyFamily } from "../key-spec";
import { openGcm, sealGcm } from "../software/aes-gcm";
import { generateSoftwareMaterial, MaterialMismatchError, softwareDecrypt, softwareKey, softwareMac, softwareSign } from "../software/asymmetric";
import { joinFormat2, tagInput } from "../wrapped-format";
import type { Binding } from "../wrapped-format";
import {
  EC_PARAMS,
  ED25519_PKCS8_PREFIX,
  hsmCreateEd25519Key,
  hsmGenerateHmacKey,
  hsmGenerateKeyPair,
  hsmMac,
  hsmOaepDecrypt,
  hsmPublicKey,
  hsmSign,
  hsmUnwrapTemplate,
} from "./asymmetric";
import { readAttributes, ulong } from "./attributes";
import { hasCode, hsmCall, hsmCallAsync, Pkcs11CallError } from "./errors";
import type { CallMode } from "./errors";
import { hsmOpenGcm, hsmSealGcm } from "./gcm";
import { Pkcs11Module } from "./module";
import { findOrCreateRootSet, findRootKeys, findRootSets, forcedHsmTemplate, rootLabels } from "./root-key";
import type { RootSet } from "./root-key";
import { HsmUnavailableError, SessionPool } from "./session-pool";
import type { PooledSession } from "./session-pool";

const KWP: pkcs11js.Mechanism = { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD };

/**
 * Module capability note: SoftHSM 2.6 can neither wrap nor unwrap EdDSA private keys
 * (CKR_KEY_NOT_WRAPPABLE, CKR_FUNCTION_FAILED). Earlier releases kept HSM-level Ed25519 keys as wrapped
 * seeds that the worker unwrapped into its own memory, so they were never HSM keys; now they are refused.
 * Ed25519 keys are SOFTWARE keys on this backend (their format 1 rows keep working, see the file comment).
 */
const HSM_UNSUPPORTED_SPECS: kmsResources.KeySpec[] = [kmsResources.KeySpec.ED25519];

function hsmSpecUnsupported(spec: kmsResources.KeySpec): KmsError {
  return new KmsError(
    status.FAILED_PRECONDITION,
    ErrorCode.HsmUnsupported,
    `${keySpecName(spec)} cannot be PROTECTION_LEVEL_HSM here: the PKCS#11 module cannot wrap its private keys, so they could not stay in the HSM; use PROTECTION_LEVEL_SOFTWARE`,
  );
}

/** Output room for a wrapped private key (an RSA-4096 PKCS#8 wraps to about 2.4 KB). */
const MAX_WRAPPED_BYTES = 4096;

/** Codes with which an RFC 5649 unwrap reports a failed integrity check or a bad length. */
const UNWRAP_REJECTED = [
  pkcs11js.CKR_WRAPPED_KEY_INVALID,
  pkcs11js.CKR_WRAPPED_KEY_LEN_RANGE,
  pkcs11js.CKR_ENCRYPTED_DATA_INVALID,
  pkcs11js.CKR_ENCRYPTED_DATA_LEN_RANGE,
  pkcs11js.CKR_GENERAL_ERROR,
];

export interface HsmBackendOptions {
  module: string;
  tokenLabel: string;
  /** Never logged. */
  pin: string;
  poolSize: number;
  rootKeyLabel: string;
  keyCacheSize: number;
  /**
   * Create the root key when the token has none (default true for embedders and tests; the worker
   * process passes KMS_CREATE_ROOT_KEY, false unless set). When false and the token has no root key, the
   * backend starts without one and fails closed: FAILED_PRECONDITION for everything that needs it.
   */
  createRootKey?: boolean;
  /** How short hot-path calls reach the module (errors.ts CallMode); default "thread-pool". */
  callMode?: CallMode;
}

/** An HSM session object holding an unwrapped HSM key. */
interface HsmObjectEntry {
  kind: "hsm";
  keyVersionId: string;
  wrapped: Buffer;
  handle: pkcs11js.Handle;
  /** The session that created it: the object dies with that session. */
  owner: number;
  /** Calls using the handle right now: it is destroyed only when none are. */
  refs: number;
  /** Out of the cache: destroy when refs reaches 0. */
  dropped: boolean;
  /** Gone with its session (or destroyed): the handle must never be passed to the module again. */
  dead: boolean;
}

interface SoftwareKeyEntry {
  kind: "software";
  keyVersionId: string;
  wrapped: Buffer;
  key: KeyObject;
}

type CacheEntry = HsmObjectEntry | SoftwareKeyEntry;

/** A key ready for one operation. */
type UsableKey = { kind: "hsm"; handle: pkcs11js.Handle } | { kind: "software"; key: KeyObject };

export class HsmBackend implements Backend {
  private readonly cache: LruCache<CacheEntry>;
  /** Undefined: the token had no root key and creating one was not asked for (fail closed). */
  private root: RootSet | undefined;
  /** Module epoch in which a missing root key means "gone for good" (see roots). */
  private rootMissingEpoch: number | undefined;
  /** Sessions opened and module epoch when the root handle was found (see roots). */
  private rootFoundAt: string;
  private readonly callMode: CallMode;

  private constructor(
    readonly pool: SessionPool,
    private readonly options: HsmBackendOptions,
    root: RootSet | undefined,
  ) {
    this.cache = new LruCache(options.keyCacheSize);
    this.callMode = options.callMode ?? "thread-pool";
    this.root = root;
    this.rootFoundAt = this.poolState();
    // Session objects die with their sessions: forget their handles, never destroy them.
    pool.onSessionsLost = () => {
      for (const entry of this.cache.deleteWhere((e) => e.kind === "hsm")) markDead(entry);
    };
    pool.onSessionClosed = (sessionId) => {
      for (const entry of this.cache.deleteWhere((e) => e.kind === "hsm" && e.owner === sessionId)) markDead(entry);
    };
  }

  /** Loads the module, opens the pool, finds or creates the root key. */
  static async open(options: HsmBackendOptions): Promise<HsmBackend> {
    const module = Pkcs11Module.open(options.module);
    const pool = new SessionPool(module, { tokenLabel: options.tokenLabel, pin: options.pin, size: options.poolSize });
    try {
      const root = await pool.run(async (s) => findOrCreateRootSet(module.lib, s.handle, options.rootKeyLabel, options.createRootKey ?? true));
      return new HsmBackend(pool, options, root);
    } catch (err) {
      await pool.close();
      throw err;
    }
  }

  get lib(): pkcs11js.PKCS11 {
    return this.pool.module.lib;
  }

  /** "" when the backend has no root key (fail closed). */
  get rootKeyId(): string {
    return this.root?.id ?? "";
  }

  /** The root key of earlier releases, whose format 1 material is still accepted; "" when there is none. */
  get legacyRootKeyId(): string {
    return this.root?.legacy?.id ?? "";
  }

  private get accepted(): AcceptedRoots {
    return { current: this.rootKeyId, legacy: this.legacyRootKeyId };
  }

  /** Number of cached unwrapped keys (for tests and metrics). */
  get cachedKeys(): number {
    return this.cache.size;
  }

  status(): BackendStatus {
    return {
      backend: hsm.Backend.PKCS11,
      rootKeyId: this.rootKeyId,
      description:
        `PKCS#11 module ${this.options.module}, token ${JSON.stringify(this.options.tokenLabel)}` +
        (this.root === undefined ? `, NO root key labelled ${JSON.stringify(this.options.rootKeyLabel)} (failing closed)` : ""),
      hsmKeysSupported: true,
      legacyRootKeyId: this.legacyRootKeyId,
      hsmUnsupportedKeySpecs: [...HSM_UNSUPPORTED_SPECS],
    };
  }

  async generateKeyMaterial(
    keySpec: kmsResources.KeySpec,
    protectionLevel: kmsResources.ProtectionLevel,
    keyVersionId: string,
    label = keyVersionId,
  ): Promise<GeneratedKey> {
    const family = keyFamily(keySpec, "key_spec");
    checkProtectionLevel(protectionLevel, "protection_level");
    if (keyVersionId === "") throw invalidArgument("key_version_id", "is required");
    const binding: Binding = { keyVersionId, keySpec, protectionLevel };
    if (family.kind !== "aes") {
      return protectionLevel === kmsResources.ProtectionLevel.HSM ? this.generateHsmKey(family, binding, label) : this.generateSoftwareKey(family, binding);
    }
    const keyBytes = family.bytes;
    const wrappedMaterial = await this.run(async (session) => {
      const root = this.levelRoot(session, protectionLevel);
      // Generated inside the HSM, sensitive; extractable only so it can leave wrapped, then destroyed.
      const key = await hsmCallAsync("C_GenerateKey(key material)", () =>
        this.lib.C_GenerateKeyAsync(session.handle, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
          { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
          { type: pkcs11js.CKA_VALUE_LEN, value: keyBytes },
          { type: pkcs11js.CKA_TOKEN, value: false },
          { type: pkcs11js.CKA_PRIVATE, value: true },
          { type: pkcs11js.CKA_SENSITIVE, value: true },
          { type: pkcs11js.CKA_EXTRACTABLE, value: true },
          { type: pkcs11js.CKA_ENCRYPT, value: false },
          { type: pkcs11js.CKA_DECRYPT, value: false },
          { type: pkcs11js.CKA_LABEL, value: label },
        ]),
      );
      try {
        const wrapped = await hsmCallAsync("C_WrapKey(root key)", () =>
          this.lib.C_WrapKeyAsync(session.handle, KWP, root, key, Buffer.alloc(kwpWrappedBytes(keyBytes) + 16)),
        );
        return await this.seal(session, binding, Buffer.from(wrapped));
      } finally {
        this.destroy(session, key, "C_DestroyObject(generated key)");
      }
    });
    return { wrappedMaterial, publicKey: Buffer.alloc(0) };
  }

  /** SOFTWARE keys other than AES: made in node:crypto (as on the software-root backend), wrapped here. */
  private async generateSoftwareKey(family: KeyFamily, binding: Binding): Promise<GeneratedKey> {
    const { material, publicKey } = await generateSoftwareMaterial(family);
    try {
      return { wrappedMaterial: await this.run((session) => this.wrapSealed(session, material, binding, "")), publicKey };
    } finally {
      wipe(material);
    }
  }

  /** HSM keys: generated inside the HSM and wrapped there under the HSM root. */
  private generateHsmKey(family: KeyFamily, binding: Binding, label: string): Promise<GeneratedKey> {
    if (HSM_UNSUPPORTED_SPECS.includes(binding.keySpec)) throw hsmSpecUnsupported(binding.keySpec);
    return this.run(async (session) => {
      const root = this.levelRoot(session, kmsResources.ProtectionLevel.HSM);
      const wrapOut = Buffer.alloc(MAX_WRAPPED_BYTES);
      if (family.kind === "hmac") {
        const key = await hsmGenerateHmacKey(this.lib, session.handle, family.bytes, label);
        try {
          const wrapped = await hsmCallAsync("C_WrapKey(HMAC key)", () => this.lib.C_WrapKeyAsync(session.handle, KWP, root, key, wrapOut));
          return { wrappedMaterial: await this.seal(session, binding, Buffer.from(wrapped)), publicKey: Buffer.alloc(0) };
        } finally {
          this.destroy(session, key, "C_DestroyObject(generated key)");
        }
      }
      const pair = await hsmGenerateKeyPair(this.lib, session.handle, family, label);
      try {
        const publicKey = hsmPublicKey(this.lib, session.handle, pair.publicKey, family);
        const wrapped = await hsmCallAsync("C_WrapKey(private key)", () =>
          this.lib.C_WrapKeyAsync(session.handle, KWP, root, pair.privateKey, wrapOut),
        );
        return { wrappedMaterial: await this.seal(session, binding, Buffer.from(wrapped)), publicKey };
      } finally {
        this.destroy(session, pair.privateKey, "C_DestroyObject(generated private key)");
        this.destroy(session, pair.publicKey, "C_DestroyObject(generated public key)");
      }
    });
  }

  /** The format 2 blob of an RFC 5649 wrap: `kwp` with the tag that binds it to `binding`. */
  private async seal(session: PooledSession, binding: Binding, kwp: Buffer): Promise<Buffer> {
    return joinFormat2(kwp, await this.tag(session, binding, kwp));
  }

  /** The tag over `binding` and `kwp`, made with the HSM-held MAC key. */
  private async tag(session: PooledSession, binding: Binding, kwp: Buffer): Promise<Buffer> {
    try {
      return await hsmMac(this.lib, session.handle, this.roots(session).mac, "sha256", tagInput(binding, kwp), this.callMode);
    } catch (err) {
      // Like the roots' handles: an invalid MAC key handle means the login or the token changed, which is
      // a lost session for the pool (new sessions look the keys up again, and the call is retried once).
      if (hasCode(err, pkcs11js.CKR_KEY_HANDLE_INVALID, pkcs11js.CKR_OBJECT_HANDLE_INVALID)) {
        throw new Pkcs11CallError(`${(err as Error).message}, root key handles lost`, pkcs11js.CKR_USER_NOT_LOGGED_IN, { cause: err });
      }
      throw err;
    }
  }

  /** Checks a format 2 blob's tag against what the caller says it is: any difference is unwrapFailed. */
  private async authenticate(session: PooledSession, checked: CheckedKey, field: string): Promise<void> {
    const expected = await this.tag(session, checked, checked.kwp);
    if (expected.length !== checked.tag.length || !timingSafeEqual(expected, checked.tag)) throw unwrapFailed(field);
  }

  /** Raw bytes wrapped under the root of `binding`'s level, as a format 2 blob. */
  private async wrapSealed(session: PooledSession, material: Buffer, binding: Binding, label: string): Promise<Buffer> {
    const kwp = await this.wrapBytes(session, this.levelRoot(session, binding.protectionLevel), material, label);
    return this.seal(session, binding, kwp);
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
      this.destroy(session, object, "C_DestroyObject(material to wrap)");
    }
  }

  /**
   * Unwraps to raw bytes (SOFTWARE keys; format 1 HSM-level Ed25519) through a short-lived generic secret.
   * The HSM root refuses this (its unwrap template), so HSM-level format 2 material never gets here. The
   * caller wipes the bytes.
   */
  private async unwrapBytes(session: PooledSession, root: pkcs11js.Handle, wrapped: Buffer, field: string): Promise<Buffer> {
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
      this.destroy(session, handle, "C_DestroyObject(unwrapped material)");
    }
  }

  async encrypt(wrappedKey: hsm.WrappedKey | undefined, plaintext: Uint8Array, aad: Uint8Array, field = "key"): Promise<Buffer> {
    const checked = requireFamily(checkWrappedKey(wrappedKey, field, this.accepted), ["aes"], field, "Encrypt");
    return this.withKey(checked, field, (session, key) =>
      key.kind === "hsm"
        ? hsmSealGcm(this.lib, session.handle, key.handle, plaintext, aad, this.callMode)
        : Promise.resolve(sealGcm(key.key, plaintext, aad)),
    );
  }

  async decrypt(wrappedKey: hsm.WrappedKey | undefined, sealed: Uint8Array, aad: Uint8Array, field = "key"): Promise<Buffer> {
    const checked = requireFamily(checkWrappedKey(wrappedKey, field, this.accepted), ["aes"], field, "Decrypt");
    return this.withKey(checked, field, (session, key) =>
      key.kind === "hsm"
        ? hsmOpenGcm(this.lib, session.handle, key.handle, sealed, aad, this.callMode)
        : Promise.resolve(openGcm(key.key, sealed, aad)),
    );
  }

  async sign(wrappedKey: hsm.WrappedKey | undefined, algorithm: kmsResources.SigningAlgorithm, input: ProtoSignInput): Promise<Buffer> {
    const checked = requireFamily(checkWrappedKey(wrappedKey, "key", this.accepted), ["rsa", "ec", "ed25519"], "key", "Sign");
    const scheme = signingScheme(checked.family, checked.keySpec, algorithm);
    const signed = signInput(scheme, input);
    return this.withKey(checked, "key", (session, key) =>
      key.kind === "hsm" ? hsmSign(this.lib, session.handle, key.handle, scheme, signed, this.callMode) : Promise.resolve(softwareSign(key.key, scheme, signed)),
    );
  }

  async asymmetricDecrypt(
    wrappedKey: hsm.WrappedKey | undefined,
    algorithm: kmsResources.EncryptionAlgorithm,
    ciphertext: Uint8Array,
  ): Promise<Buffer> {
    const checked = requireFamily(checkWrappedKey(wrappedKey, "key", this.accepted), ["rsa"], "key", "AsymmetricDecrypt");
    const hash = oaepHash(algorithm);
    const k = checked.family.bits / 8;
    return this.withKey(checked, "key", (session, key) =>
      key.kind === "hsm"
        ? hsmOaepDecrypt(this.lib, session.handle, key.handle, hash, ciphertext, k)
        : Promise.resolve(softwareDecrypt(key.key, hash, ciphertext)),
    );
  }

  async generateMac(wrappedKey: hsm.WrappedKey | undefined, message: Uint8Array): Promise<Buffer> {
    const checked = requireFamily(checkWrappedKey(wrappedKey, "key", this.accepted), ["hmac"], "key", "GenerateMac");
    const hash = checked.family.hash;
    return this.withKey(checked, "key", (session, key) =>
      key.kind === "hsm" ? hsmMac(this.lib, session.handle, key.handle, hash, message, this.callMode) : Promise.resolve(softwareMac(key.key, hash, message)),
    );
  }

  generateRandom(numberOfBytes: number): Promise<Buffer> {
    return this.run(async (session) =>
      hsmCall("C_GenerateRandom", () => this.lib.C_GenerateRandom(session.handle, Buffer.alloc(numberOfBytes))),
    );
  }

  async forgetKeys(keyVersionIds: readonly string[]): Promise<void> {
    const ids = new Set(keyVersionIds);
    const entries = this.cache.deleteWhere((e) => ids.has(e.keyVersionId));
    if (!entries.some((e) => e.kind === "hsm")) return;
    await this.run(async (session) => {
      for (const entry of entries) this.release(session, entry, true);
    });
  }

  /** Imported material: wrapped through a short-lived generic secret object under its level's root. */
  async wrapMaterial(material: Buffer, binding: Binding, label: string): Promise<Buffer> {
    if (binding.protectionLevel === kmsResources.ProtectionLevel.HSM && HSM_UNSUPPORTED_SPECS.includes(binding.keySpec)) {
      throw hsmSpecUnsupported(binding.keySpec);
    }
    return this.run((session) => this.wrapSealed(session, material, binding, label));
  }

  legacyWrap(material: Buffer, label: string): Promise<Buffer | undefined> {
    return this.run(async (session) => {
      const legacy = this.roots(session).legacy;
      return legacy === undefined ? undefined : this.wrapBytes(session, legacy.handle, material, label);
    });
  }

  async close(): Promise<void> {
    // Closing the sessions destroys every session object; the handles are simply forgotten.
    for (const entry of this.cache.clear()) markDead(entry);
    await this.pool.close();
  }

  /** Runs on a pooled session; PKCS#11 failures become the worker's error types here. */
  private async run<T>(operation: (session: PooledSession) => Promise<T>): Promise<T> {
    try {
      return await this.pool.run(operation);
    } catch (err) {
      if (err instanceof KmsError || err instanceof InternalError) throw err;
      if (err instanceof HsmUnavailableError) {
        throw Object.assign(unavailable("HSM"), { cause: err });
      }
      if (err instanceof Pkcs11CallError) throw new InternalError(err.message, { cause: err });
      throw new InternalError("HSM backend failure", { cause: err });
    }
  }

  private poolState(): string {
    return `${this.pool.opened}/${this.pool.module.epoch}`;
  }

  /** The wrapping root of a protection level (HSM material never goes under the SOFTWARE root). */
  private levelRoot(session: PooledSession, level: kmsResources.ProtectionLevel): pkcs11js.Handle {
    const roots = this.roots(session);
    return level === kmsResources.ProtectionLevel.HSM ? roots.hsm : roots.software;
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

  private noRootKey(why: string): KmsError {
    return new KmsError(
      status.FAILED_PRECONDITION,
      ErrorCode.RootKeyMismatch,
      `root key ${JSON.stringify(this.options.rootKeyLabel)} unavailable on token ${JSON.stringify(this.options.tokenLabel)}: ${why}; no key material is used or created`,
    );
  }

  /** Runs `use` with the key unwrapped (from the cache when possible). */
  private withKey<T>(
    checked: CheckedKey,
    field: string,
    use: (session: PooledSession, key: UsableKey) => Promise<T>,
  ): Promise<T> {
    return this.run(async (session) => {
      const entry = await this.cachedOrUnwrap(session, checked, field);
      if (entry.kind === "software") return use(session, entry);
      entry.refs++;
      try {
        return await use(session, entry);
      } catch (err) {
        // C_Logout (or a lost login) invalidates every handle to a private object, cached keys included:
        // that is a lost session for the pool, which replaces the sessions and retries once.
        if (hasCode(err, pkcs11js.CKR_KEY_HANDLE_INVALID, pkcs11js.CKR_OBJECT_HANDLE_INVALID)) {
          throw new Pkcs11CallError(`${(err as Error).message}, key handles lost`, pkcs11js.CKR_USER_NOT_LOGGED_IN, { cause: err });
        }
        throw err;
      } finally {
        entry.refs--;
        this.release(session, entry, false);
      }
    });
  }

  private async cachedOrUnwrap(session: PooledSession, checked: CheckedKey, field: string): Promise<CacheEntry> {
    // The slot is version id, spec and level; the wrapped bytes must match too, or the entry is not this
    // key. An entry was authenticated (format 2) for exactly these four when it was made.
    const slot = unwrappedKeySlot(checked);
    const cached = this.cache.get(slot);
    if (cached !== undefined && cached.wrapped.equals(asBuffer(checked.wrappedMaterial))) return cached;
    const entry = await this.unwrap(session, checked, field);
    if (entry.kind === "hsm" && session.generation !== this.pool.generation) {
      // Sessions were lost while we unwrapped: this object is not cached, and goes away after the call.
      entry.dropped = true;
      return entry;
    }
    for (const old of this.cache.set(slot, entry)) this.release(session, old, true);
    return entry;
  }

  /**
   * The root to unwrap `checked` with: format 2 only after its tag matched the caller's version, spec and
   * level; format 1 (legacy root) as earlier releases did.
   */
  private async unwrapRoot(session: PooledSession, checked: CheckedKey, field: string): Promise<pkcs11js.Handle> {
    if (checked.format === "legacy") {
      const legacy = this.roots(session).legacy;
      if (legacy === undefined) throw this.noRootKey("the legacy root key is no longer on the token");
      return legacy.handle;
    }
    await this.authenticate(session, checked, field);
    return this.levelRoot(session, checked.protectionLevel);
  }

  private async unwrap(session: PooledSession, checked: CheckedKey, field: string): Promise<CacheEntry> {
    const family = checked.family;
    const root = await this.unwrapRoot(session, checked, field);
    if (family.kind !== "aes") return this.unwrapOther(session, root, checked, family, field);
    const keyBytes = family.bytes;
    const wrapped = Buffer.from(checked.wrappedMaterial);
    const kwp = checked.kwp;
    const keyVersionId = checked.keyVersionId;
    const hsmLevel = checked.protectionLevel === kmsResources.ProtectionLevel.HSM;
    const common: pkcs11js.Template = [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      // HSM keys stay inside; SOFTWARE keys are read out once and the object destroyed.
      { type: pkcs11js.CKA_SENSITIVE, value: hsmLevel },
      { type: pkcs11js.CKA_EXTRACTABLE, value: !hsmLevel },
      { type: pkcs11js.CKA_ENCRYPT, value: hsmLevel },
      { type: pkcs11js.CKA_DECRYPT, value: hsmLevel },
    ];
    const template = hsmLevel ? forcedHsmTemplate(common) : common;
    let handle: pkcs11js.Handle;
    try {
      handle = await hsmCallAsync("C_UnwrapKey(root key)", () =>
        this.lib.C_UnwrapKeyAsync(session.handle, KWP, root, kwp, template),
      );
    } catch (err) {
      if (hasCode(err, ...UNWRAP_REJECTED)) throw unwrapFailed(field);
      throw err;
    }
    if (hsmLevel) {
      const length = ulong(
        readAttributes(this.lib, session.handle, handle, [pkcs11js.CKA_VALUE_LEN], "unwrapped key length").get(pkcs11js.CKA_VALUE_LEN),
      );
      // SoftHSM 2.6 reports CKA_VALUE_LEN 0 for unwrapped keys; the wrapped length was checked already
      // (40 bytes hold 25-32, 24 bytes hold 9-16), and the HSM refuses non-AES key sizes at use.
      if (length > 0 && length !== keyBytes) {
        this.destroy(session, handle, "C_DestroyObject(unwrapped key)");
        throw unwrapFailed(field);
      }
      return { kind: "hsm", keyVersionId, wrapped, handle, owner: session.id, refs: 0, dropped: false, dead: false };
    }
    let material: Buffer | undefined;
    try {
      material = readAttributes(this.lib, session.handle, handle, [pkcs11js.CKA_VALUE], "unwrapped key value").get(pkcs11js.CKA_VALUE);
    } finally {
      this.destroy(session, handle, "C_DestroyObject(unwrapped key)");
    }
    try {
      if (material === undefined || material.length !== keyBytes) throw unwrapFailed(field);
      // createSecretKey copies the bytes into the KeyObject; the Buffer is zeroed right after.
      return { kind: "software", keyVersionId, wrapped, key: createSecretKey(material) };
    } finally {
      wipe(material);
    }
  }

  /** HMAC and asymmetric keys: HSM objects for HSM keys, KeyObjects for SOFTWARE keys. */
  private async unwrapOther(session: PooledSession, root: pkcs11js.Handle, checked: CheckedKey, family: KeyFamily, field: string): Promise<CacheEntry> {
    const wrapped = Buffer.from(checked.wrappedMaterial);
    const keyVersionId = checked.keyVersionId;
    if (checked.protectionLevel !== kmsResources.ProtectionLevel.HSM) {
      const material = await this.unwrapBytes(session, root, checked.kwp, field);
      try {
        return { kind: "software", keyVersionId, wrapped, key: softwareKey(family, material) };
      } catch (err) {
        if (err instanceof MaterialMismatchError) throw unwrapFailed(field);
        throw err;
      } finally {
        wipe(material);
      }
    }
    if (family.kind === "ed25519") {
      // Only format 1 rows can hold HSM-level Ed25519 (see HSM_UNSUPPORTED_SPECS); format 2 never does.
      if (checked.format !== "legacy") throw unwrapFailed(field);
      return this.unwrapEd25519(session, root, checked, field);
    }
    let handle: pkcs11js.Handle;
    try {
      handle = await hsmCallAsync("C_UnwrapKey(root key)", () =>
        this.lib.C_UnwrapKeyAsync(session.handle, KWP, root, checked.kwp, forcedHsmTemplate(hsmUnwrapTemplate(family))),
      );
    } catch (err) {
      // SoftHSM answers CKR_FUNCTION_FAILED when the PKCS#8 inside is not a key of the template's type.
      if (hasCode(err, ...UNWRAP_REJECTED, pkcs11js.CKR_TEMPLATE_INCONSISTENT, pkcs11js.CKR_FUNCTION_FAILED)) throw unwrapFailed(field);
      throw err;
    }
    if (!this.fitsFamily(session, handle, family)) {
      this.destroy(session, handle, "C_DestroyObject(unwrapped key)");
      throw unwrapFailed(field);
    }
    return { kind: "hsm", keyVersionId, wrapped, handle, owner: session.id, refs: 0, dropped: false, dead: false };
  }

  /** The unwrapped object is the spec's size or curve (an HMAC key's length SoftHSM does not report). */
  private fitsFamily(session: PooledSession, handle: pkcs11js.Handle, family: KeyFamily): boolean {
    if (family.kind === "rsa") {
      const modulus = readAttributes(this.lib, session.handle, handle, [pkcs11js.CKA_MODULUS], "unwrapped key modulus").get(pkcs11js.CKA_MODULUS);
      return modulus !== undefined && modulus.length === family.bits / 8;
    }
    if (family.kind === "ec") {
      const params = readAttributes(this.lib, session.handle, handle, [pkcs11js.CKA_EC_PARAMS], "unwrapped key curve").get(pkcs11js.CKA_EC_PARAMS);
      return params !== undefined && params.equals(EC_PARAMS[family.curve]);
    }
    return family.kind === "hmac";
  }

  /** Format 1 HSM-level Ed25519: a wrapped seed, made into a sensitive object (in worker memory meanwhile). */
  private async unwrapEd25519(session: PooledSession, root: pkcs11js.Handle, checked: CheckedKey, field: string): Promise<CacheEntry> {
    const wrapped = Buffer.from(checked.wrappedMaterial);
    const pkcs8 = await this.unwrapBytes(session, root, checked.kwp, field);
    const seed = pkcs8.subarray(ED25519_PKCS8_PREFIX.length);
    try {
      if (pkcs8.length !== ED25519_PKCS8_PREFIX.length + 32 || !pkcs8.subarray(0, ED25519_PKCS8_PREFIX.length).equals(ED25519_PKCS8_PREFIX)) {
        throw unwrapFailed(field);
      }
      const handle = hsmCreateEd25519Key(this.lib, session.handle, seed);
      return { kind: "hsm", keyVersionId: checked.keyVersionId, wrapped, handle, owner: session.id, refs: 0, dropped: false, dead: false };
    } finally {
      wipe(pkcs8);
    }
  }

  /** Releases an entry that left the cache (or never entered it): destroys its object once unused. */
  private release(session: PooledSession, entry: CacheEntry, dropped: boolean): void {
    if (entry.kind !== "hsm") return;
    if (dropped) entry.dropped = true;
    if (!entry.dropped || entry.dead || entry.refs > 0) return;
    entry.dead = true;
    this.destroy(session, entry.handle, "C_DestroyObject(cached key)");
  }

  /** Best-effort C_DestroyObject: a session object we fail to destroy still dies with its session. */
  private destroy(session: PooledSession, handle: pkcs11js.Handle, context: string): void {
    try {
      hsmCall(context, () => this.lib.C_DestroyObject(session.handle, handle));
    } catch {
      // ignored on purpose (see above)
    }
  }
}

function markDead(entry: CacheEntry): void {
  if (entry.kind === "hsm") {
    entry.dropped = true;
    entry.dead = true;
  }
}
