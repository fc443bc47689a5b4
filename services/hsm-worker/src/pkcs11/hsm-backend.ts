// The PKCS#11 backend: key material is generated in the HSM and leaves it only wrapped under the root key.
// HSM keys are unwrapped into sensitive, non-extractable session objects and used there; SOFTWARE keys
// are unwrapped into the worker as KeyObjects. Both kinds are cached (LRU) by key version id.
import { createSecretKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import * as pkcs11js from "pkcs11js";
import { InternalError, KmsError, unavailable } from "@kms/errors";
import { hsm, kmsResources } from "@kms/proto";
import type { Backend, BackendStatus, CheckedKey } from "../backend";
import { checkWrappedKey, unwrapFailed } from "../backend";
import { asBuffer, wipe } from "../bytes";
import { LruCache } from "../handle-cache";
import { aesKeyBytes, checkProtectionLevel, kwpWrappedBytes } from "../key-spec";
import { openGcm, sealGcm } from "../software/aes-gcm";
import { readAttributes, ulong } from "./attributes";
import { hasCode, hsmCall, hsmCallAsync, Pkcs11CallError } from "./errors";
import { hsmOpenGcm, hsmSealGcm } from "./gcm";
import { Pkcs11Module } from "./module";
import { findOrCreateRootKey, findRootKeys } from "./root-key";
import type { RootKey } from "./root-key";
import { HsmUnavailableError, SessionPool } from "./session-pool";
import type { PooledSession } from "./session-pool";

const KWP: pkcs11js.Mechanism = { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD };

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
}

/** An HSM session object holding an unwrapped HSM key. */
interface HsmObjectEntry {
  kind: "hsm";
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
  wrapped: Buffer;
  key: KeyObject;
}

type CacheEntry = HsmObjectEntry | SoftwareKeyEntry;

/** A key ready for one operation. */
type UsableKey = { kind: "hsm"; handle: pkcs11js.Handle } | { kind: "software"; key: KeyObject };

export class HsmBackend implements Backend {
  private readonly cache: LruCache<CacheEntry>;
  private root: RootKey;
  /** Sessions opened and module epoch when the root handle was found (see rootHandle). */
  private rootFoundAt: string;

  private constructor(
    readonly pool: SessionPool,
    private readonly options: HsmBackendOptions,
    root: RootKey,
  ) {
    this.cache = new LruCache(options.keyCacheSize);
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
      const root = await pool.run((s) => findOrCreateRootKey(module.lib, s.handle, options.rootKeyLabel));
      return new HsmBackend(pool, options, root);
    } catch (err) {
      await pool.close();
      throw err;
    }
  }

  get lib(): pkcs11js.PKCS11 {
    return this.pool.module.lib;
  }

  get rootKeyId(): string {
    return this.root.id;
  }

  /** Number of cached unwrapped keys (for tests and metrics). */
  get cachedKeys(): number {
    return this.cache.size;
  }

  status(): BackendStatus {
    return {
      backend: hsm.Backend.PKCS11,
      rootKeyId: this.root.id,
      description: `PKCS#11 module ${this.options.module}, token ${JSON.stringify(this.options.tokenLabel)}`,
      hsmKeysSupported: true,
    };
  }

  async generateKeyMaterial(
    keySpec: kmsResources.KeySpec,
    protectionLevel: kmsResources.ProtectionLevel,
    label: string,
  ): Promise<Uint8Array> {
    const keyBytes = aesKeyBytes(keySpec, "key_spec");
    checkProtectionLevel(protectionLevel, "protection_level");
    return this.run(async (session) => {
      const root = this.rootHandle(session);
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
        return Buffer.from(wrapped);
      } finally {
        this.destroy(session, key, "C_DestroyObject(generated key)");
      }
    });
  }

  async encrypt(wrappedKey: hsm.WrappedKey | undefined, plaintext: Uint8Array, aad: Uint8Array, field = "key"): Promise<Buffer> {
    const checked = checkWrappedKey(wrappedKey, field, this.root.id);
    return this.withKey(checked, field, (session, key) =>
      key.kind === "hsm"
        ? hsmSealGcm(this.lib, session.handle, key.handle, plaintext, aad)
        : Promise.resolve(sealGcm(key.key, plaintext, aad)),
    );
  }

  async decrypt(wrappedKey: hsm.WrappedKey | undefined, sealed: Uint8Array, aad: Uint8Array, field = "key"): Promise<Buffer> {
    const checked = checkWrappedKey(wrappedKey, field, this.root.id);
    return this.withKey(checked, field, (session, key) =>
      key.kind === "hsm"
        ? hsmOpenGcm(this.lib, session.handle, key.handle, sealed, aad)
        : Promise.resolve(openGcm(key.key, sealed, aad)),
    );
  }

  generateRandom(numberOfBytes: number): Promise<Buffer> {
    return this.run(async (session) =>
      hsmCall("C_GenerateRandom", () => this.lib.C_GenerateRandom(session.handle, Buffer.alloc(numberOfBytes))),
    );
  }

  async forgetKeys(keyVersionIds: readonly string[]): Promise<void> {
    const entries = keyVersionIds.map((id) => this.cache.delete(id)).filter((e) => e !== undefined);
    if (!entries.some((e) => e.kind === "hsm")) return;
    await this.run(async (session) => {
      for (const entry of entries) this.release(session, entry, true);
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

  /**
   * The root key's handle. Looked up again whenever sessions were replaced: SoftHSM drops every object
   * handle of a slot (token objects too) when its last session closes, and all of them after C_Finalize.
   */
  private rootHandle(session: PooledSession): pkcs11js.Handle {
    if (this.rootFoundAt !== this.poolState()) {
      const found = findRootKeys(this.lib, session.handle, this.options.rootKeyLabel).find((k) => k.id === this.root.id);
      if (found === undefined) throw new InternalError(`root key ${this.root.id} is no longer on the token`);
      this.root = found;
      this.rootFoundAt = this.poolState();
    }
    return this.root.handle;
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
      } finally {
        entry.refs--;
        this.release(session, entry, false);
      }
    });
  }

  private async cachedOrUnwrap(session: PooledSession, checked: CheckedKey, field: string): Promise<CacheEntry> {
    const cached = this.cache.get(checked.keyVersionId);
    // The cache key is the version id; the wrapped bytes must match too, or the entry is not this key.
    if (cached !== undefined && cached.wrapped.equals(asBuffer(checked.wrappedMaterial))) return cached;
    const entry = await this.unwrap(session, checked, field);
    if (entry.kind === "hsm" && session.generation !== this.pool.generation) {
      // Sessions were lost while we unwrapped: this object is not cached, and goes away after the call.
      entry.dropped = true;
      return entry;
    }
    for (const old of this.cache.set(checked.keyVersionId, entry)) this.release(session, old, true);
    return entry;
  }

  private async unwrap(session: PooledSession, checked: CheckedKey, field: string): Promise<CacheEntry> {
    const wrapped = Buffer.from(checked.wrappedMaterial);
    const root = this.rootHandle(session);
    const hsmLevel = checked.protectionLevel === kmsResources.ProtectionLevel.HSM;
    const template: pkcs11js.Template = [
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
    let handle: pkcs11js.Handle;
    try {
      handle = await hsmCallAsync("C_UnwrapKey(root key)", () =>
        this.lib.C_UnwrapKeyAsync(session.handle, KWP, root, wrapped, template),
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
      if (length > 0 && length !== checked.keyBytes) {
        this.destroy(session, handle, "C_DestroyObject(unwrapped key)");
        throw unwrapFailed(field);
      }
      return { kind: "hsm", wrapped, handle, owner: session.id, refs: 0, dropped: false, dead: false };
    }
    let material: Buffer | undefined;
    try {
      material = readAttributes(this.lib, session.handle, handle, [pkcs11js.CKA_VALUE], "unwrapped key value").get(pkcs11js.CKA_VALUE);
    } finally {
      this.destroy(session, handle, "C_DestroyObject(unwrapped key)");
    }
    try {
      if (material === undefined || material.length !== checked.keyBytes) throw unwrapFailed(field);
      // createSecretKey copies the bytes into the KeyObject; the Buffer is zeroed right after.
      return { kind: "software", wrapped, key: createSecretKey(material) };
    } finally {
      wipe(material);
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
