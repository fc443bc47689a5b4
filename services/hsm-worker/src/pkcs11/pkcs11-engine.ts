// "Where the key is used" for HSM keys: unwrapped under the PKCS#11 root into sensitive, non-extractable
// session objects, cached (LRU) by version id, spec and level and compared by wrapped bytes, and used there
// through the family files (aes.ts, hmac.ts, rsa.ts, key-objects.ts). A cached object is destroyed only
// once no call is using it; objects die with their sessions, so a lost session only forgets handles.
import * as pkcs11js from "pkcs11js";
import type { OaepHash } from "../asymmetric/oaep";
import type { SignInput, SigningScheme } from "../asymmetric/signing-scheme";
import { moduleCannotHold } from "@kms/key-rules";
import type { AesKey, CheckedKey, EcKey, HmacKey, PeerKey, RsaKey, SigningKey } from "../backend";
import { unwrapFailed } from "../backend";
import { asBuffer, wipe } from "../bytes";
import type { KeyEngine } from "../engine";
import { unwrappedKeySlot } from "../handle-cache";
import type { CachedKey, KeyCache } from "../handle-cache";
import { hsmOpenGcm, hsmSealGcm } from "./aes";
import { readAttributes, ulong } from "./attributes";
import type { ModuleProfile } from "./capabilities";
import { FIELD_BYTES } from "../asymmetric/ecdsa-signature";
import { ED25519_PKCS8_PREFIX, hsmAllowDerive, hsmCreateEd25519Key, hsmEcdh } from "./ec";
import { hasCode, hsmCallAsync, Pkcs11CallError } from "./errors";
import type { CallMode } from "./errors";
import { hsmMac } from "./hmac";
import { hsmAgreementTemplate, hsmObjectFits, hsmSign, hsmUnwrapTemplate } from "./key-objects";
import { KWP, UNWRAP_REJECTED } from "./pkcs11-root";
import type { Pkcs11Root } from "./pkcs11-root";
import { forcedHsmTemplate } from "./root-key";
import { hsmOaepDecrypt } from "./rsa";
import type { PooledSession, SessionPool } from "./session-pool";
import { destroyObject, withSession } from "./with-session";

/** An HSM session object holding an unwrapped HSM key. */
interface HsmObject extends CachedKey {
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

function markDead(entry: HsmObject): void {
  entry.dropped = true;
  entry.dead = true;
}

export class Pkcs11Engine implements KeyEngine {
  /** Objects out of the cache and unused, pushed out while no session was at hand: destroyed on the next call. */
  private unused: HsmObject[] = [];

  constructor(
    private readonly pool: SessionPool,
    private readonly root: Pkcs11Root,
    private readonly profile: ModuleProfile,
    private readonly callMode: CallMode,
    private readonly cache: KeyCache,
  ) {
    // Session objects die with their sessions: forget their handles, never destroy them.
    pool.onSessionsLost = () => {
      for (const entry of this.cache.deleteWhere((e) => e.engine === this)) markDead(entry as HsmObject);
      this.unused = [];
    };
    pool.onSessionClosed = (sessionId) => {
      for (const entry of this.cache.deleteWhere((e) => e.engine === this && (e as HsmObject).owner === sessionId)) markDead(entry as HsmObject);
    };
  }

  private get lib(): pkcs11js.PKCS11 {
    return this.pool.module.lib;
  }

  encrypt(key: AesKey, plaintext: Uint8Array, aad: Uint8Array, field: string): Promise<Buffer> {
    return this.withKey(key, field, (session, handle) => hsmSealGcm(this.lib, session.handle, handle, plaintext, aad, this.callMode));
  }

  decrypt(key: AesKey, sealed: Uint8Array, aad: Uint8Array, field: string): Promise<Buffer> {
    return this.withKey(key, field, (session, handle) => hsmOpenGcm(this.lib, session.handle, handle, sealed, aad, this.callMode));
  }

  sign(key: SigningKey, scheme: SigningScheme, input: SignInput): Promise<Buffer> {
    if (key.family.kind === "ml-dsa") return Promise.reject(moduleCannotHold(key.keySpec));
    return this.withKey(key, "key", (session, handle) => hsmSign(this.lib, session.handle, handle, scheme, input, this.callMode));
  }

  asymmetricDecrypt(key: RsaKey, hash: OaepHash, ciphertext: Uint8Array): Promise<Buffer> {
    const k = key.family.bits / 8;
    return this.withKey(key, "key", (session, handle) =>
      hsmOaepDecrypt(this.lib, session.handle, handle, hash, ciphertext, k, undefined, this.profile.oaepSha256),
    );
  }

  generateMac(key: HmacKey, message: Uint8Array): Promise<Buffer> {
    return this.withKey(key, "key", (session, handle) => hsmMac(this.lib, session.handle, handle, key.family.hash, message, this.callMode));
  }

  /**
   * ECDH in the HSM. The key is unwrapped for this call only, into an object that can derive but not sign
   * (the cached objects sign and cannot derive), and destroyed with the derived secret afterwards.
   */
  deriveSharedSecret(key: EcKey, peer: PeerKey): Promise<Buffer> {
    return withSession(this.pool, async (session) => {
      const handle = await this.unwrap(session, key, "key", hsmAgreementTemplate());
      try {
        hsmAllowDerive(this.lib, session.handle, handle);
        return await hsmEcdh(this.lib, session.handle, handle, peer.point, FIELD_BYTES[key.family.curve]);
      } finally {
        destroyObject(this.lib, session.handle, handle);
      }
    });
  }

  /** Unwraps into a session object (authenticated, its type checked) and destroys it at once. */
  check(key: CheckedKey, field: string): Promise<void> {
    return withSession(this.pool, async (session) => {
      const handle = await this.unwrap(session, key, field);
      destroyObject(this.lib, session.handle, handle);
    });
  }

  async forget(keyVersionIds: ReadonlySet<string>): Promise<void> {
    const entries = this.cache.deleteWhere((e) => e.engine === this && keyVersionIds.has(e.keyVersionId));
    for (const entry of entries) entry.evicted();
    if (this.unused.length === 0) return;
    await withSession(this.pool, async (session) => this.destroyUnused(session));
  }

  /** Destroys the objects that left the cache and are not in use. */
  private destroyUnused(session: PooledSession): void {
    const unused = this.unused;
    this.unused = [];
    for (const entry of unused) this.release(session, entry, true);
  }

  /** Runs `use` with the key's object (from the cache when possible). */
  private withKey<T>(checked: CheckedKey, field: string, use: (session: PooledSession, handle: pkcs11js.Handle) => Promise<T>): Promise<T> {
    return withSession(this.pool, async (session) => {
      if (this.unused.length > 0) this.destroyUnused(session);
      const entry = await this.cachedOrUnwrap(session, checked, field);
      entry.refs++;
      try {
        return await use(session, entry.handle);
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

  private async cachedOrUnwrap(session: PooledSession, checked: CheckedKey, field: string): Promise<HsmObject> {
    // The slot is version id, spec and level; the wrapped bytes must match too, or the entry is not this
    // key. An entry was authenticated (format 2) for exactly these four when it was made.
    const slot = unwrappedKeySlot(checked);
    const cached = this.cache.get(slot);
    if (cached?.engine === this && cached.wrapped.equals(asBuffer(checked.wrappedMaterial))) return cached as HsmObject;
    const handle = await this.unwrap(session, checked, field);
    const entry: HsmObject = {
      engine: this,
      evicted: () => {
        entry.dropped = true;
        if (!entry.dead && entry.refs === 0) this.unused.push(entry);
      },
      keyVersionId: checked.keyVersionId,
      wrapped: Buffer.from(checked.wrappedMaterial),
      handle,
      owner: session.id,
      refs: 0,
      dropped: false,
      dead: false,
    };
    if (session.generation !== this.pool.generation) {
      // Sessions were lost while we unwrapped: this object is not cached, and goes away after the call.
      entry.dropped = true;
      return entry;
    }
    for (const old of this.cache.set(slot, entry)) old.evicted();
    this.destroyUnused(session);
    return entry;
  }

  /** Unwraps into a session object whose type, size or curve is checked against the spec. */
  /** `template`: the object's attributes (default: the family's; the HSM root's forced ones are added). */
  private async unwrap(session: PooledSession, checked: CheckedKey, field: string, template?: pkcs11js.Template): Promise<pkcs11js.Handle> {
    const family = checked.family;
    const root = await this.root.unwrappingKey(session, checked, field);
    if (family.kind === "ed25519") {
      // Only format 1 rows can hold HSM-level Ed25519 (see the module profile); format 2 never does.
      if (checked.format !== "legacy" || this.profile.legacyEd25519 !== "seed-object") throw unwrapFailed(field);
      return this.unwrapEd25519Seed(session, root, checked, field);
    }
    let handle: pkcs11js.Handle;
    try {
      handle = await hsmCallAsync("C_UnwrapKey(root key)", () =>
        this.lib.C_UnwrapKeyAsync(session.handle, KWP, root, checked.kwp, forcedHsmTemplate(template ?? hsmUnwrapTemplate(family))),
      );
    } catch (err) {
      // SoftHSM answers CKR_FUNCTION_FAILED when the PKCS#8 inside is not a key of the template's type.
      const rejected = family.kind === "aes" ? UNWRAP_REJECTED : [...UNWRAP_REJECTED, pkcs11js.CKR_TEMPLATE_INCONSISTENT, pkcs11js.CKR_FUNCTION_FAILED];
      if (hasCode(err, ...rejected)) throw unwrapFailed(field);
      throw err;
    }
    if (!this.fits(session, handle, checked)) {
      destroyObject(this.lib, session.handle, handle);
      throw unwrapFailed(field);
    }
    return handle;
  }

  private fits(session: PooledSession, handle: pkcs11js.Handle, checked: CheckedKey): boolean {
    const family = checked.family;
    if (family.kind !== "aes") return hsmObjectFits(this.lib, session.handle, handle, family);
    const length = ulong(readAttributes(this.lib, session.handle, handle, [pkcs11js.CKA_VALUE_LEN], "unwrapped key length").get(pkcs11js.CKA_VALUE_LEN));
    // SoftHSM 2.6 reports CKA_VALUE_LEN 0 for unwrapped keys; the wrapped length was checked already
    // (40 bytes hold 25-32, 24 bytes hold 9-16), and the HSM refuses non-AES key sizes at use.
    return length <= 0 || length === family.bytes;
  }

  /** Format 1 HSM-level Ed25519: a wrapped seed, made into a sensitive object (in worker memory meanwhile). */
  private async unwrapEd25519Seed(session: PooledSession, root: pkcs11js.Handle, checked: CheckedKey, field: string): Promise<pkcs11js.Handle> {
    const pkcs8 = await this.root.unwrapBytes(session, root, checked.kwp, field);
    try {
      if (pkcs8.length !== ED25519_PKCS8_PREFIX.length + 32 || !pkcs8.subarray(0, ED25519_PKCS8_PREFIX.length).equals(ED25519_PKCS8_PREFIX)) {
        throw unwrapFailed(field);
      }
      return hsmCreateEd25519Key(this.lib, session.handle, pkcs8.subarray(ED25519_PKCS8_PREFIX.length));
    } finally {
      wipe(pkcs8);
    }
  }

  /** Releases an entry that left the cache (or never entered it): destroys its object once unused. */
  private release(session: PooledSession, entry: HsmObject, dropped: boolean): void {
    if (dropped) entry.dropped = true;
    if (!entry.dropped || entry.dead || entry.refs > 0) return;
    entry.dead = true;
    destroyObject(this.lib, session.handle, entry.handle);
  }
}
