// The PKCS#11 backend: the PKCS#11 root (pkcs11-root.ts) wraps everything; HSM keys are used in the HSM
// (pkcs11-engine.ts), SOFTWARE keys in the worker (software/node-engine.ts). HSM-level material is
// generated in the HSM and leaves it only wrapped under the HSM root, whose CKA_UNWRAP_TEMPLATE keeps it
// sensitive and non-extractable whoever unwraps it; SOFTWARE material other than AES comes from node:crypto
// and is wrapped under the SOFTWARE root. Every blob is format 2 (wrapped-format.ts), checked before
// anything is unwrapped. What the module cannot do natively is the module profile's call (capabilities.ts).
//
// Format 1 rows (a bare RFC 5649 wrap under the legacy root of earlier releases) are still used as those
// releases used them, level and spec taken from the caller, until issue 22's root rotation re-wraps them.
import * as pkcs11js from "pkcs11js";
import { moduleCannotHold } from "@kms/key-rules";
import { kmsResources } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import type { Acceptance, Backend, BackendMetrics, BackendStatus, CheckedKey, GeneratedKey, NewKey, Rewrap, Sealed } from "../backend";
import { wipe } from "../bytes";
import type { KeyEngine } from "../engine";
import { EngineBackend } from "../engine-backend";
import { LruCache } from "../handle-cache";
import type { KeyCache } from "../handle-cache";
import { kwpWrappedBytes } from "../key-spec";
import { NodeCryptoEngine } from "../software/node-engine";
import { generateSoftwareMaterial } from "../software/asymmetric";
import type { Binding } from "../wrapped-format";
import { generateAesKey } from "./aes";
import { chooseProfile } from "./capabilities";
import type { ModuleProfile, ProfileChoice } from "./capabilities";
import { hsmCall } from "./errors";
import type { CallMode } from "./errors";
import { hsmGenerateHmacKey } from "./hmac";
import { hsmGenerateKeyPair, hsmPublicKey } from "./key-objects";
import { Pkcs11Module } from "./module";
import { Pkcs11Engine } from "./pkcs11-engine";
import { MAX_WRAPPED_BYTES, Pkcs11Root } from "./pkcs11-root";
import { SessionPool } from "./session-pool";
import type { PooledSession } from "./session-pool";
import { destroyObject, withSession } from "./with-session";
import { FileRoot } from "../software/file-root";

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
  /** KMS_PKCS11_PROFILE: the module profile, or "auto" (default) to choose it from C_GetInfo. */
  profile?: ProfileChoice;
  /** KMS_SOURCE_ROOT_KEY_FILE: a software root file whose SOFTWARE keys still unwrap (never wrap) until a rotation moves them. */
  sourceRootKeyFile?: string | undefined;
}

export class HsmBackend extends EngineBackend implements Backend {
  private readonly hsmEngine: Pkcs11Engine;
  private readonly softwareEngine: NodeCryptoEngine;
  protected readonly engines: readonly KeyEngine[];
  protected readonly cache: KeyCache;
  private closed = false;

  private constructor(
    readonly pool: SessionPool,
    protected readonly root: Pkcs11Root,
    readonly profile: ModuleProfile,
    private readonly options: HsmBackendOptions,
  ) {
    super();
    // One cache for both engines: KMS_KEY_CACHE_SIZE bounds HSM objects and KeyObjects together.
    this.cache = new LruCache(options.keyCacheSize);
    this.hsmEngine = new Pkcs11Engine(pool, root, profile, options.callMode ?? "thread-pool", this.cache);
    this.softwareEngine = new NodeCryptoEngine((key, field) => root.unwrapMaterial(key, field), this.cache);
    this.engines = [this.hsmEngine, this.softwareEngine];
  }

  /** Loads the module, chooses its profile, opens the pool, finds or creates the root key. */
  static async open(options: HsmBackendOptions): Promise<HsmBackend> {
    const module = Pkcs11Module.open(options.module);
    let pool: SessionPool | undefined;
    try {
      const profile = chooseProfile(hsmCall("C_GetInfo", () => module.lib.C_GetInfo()), options.profile);
      pool = new SessionPool(module, { tokenLabel: options.tokenLabel, pin: options.pin, size: options.poolSize });
      const root = await Pkcs11Root.open(pool, {
        tokenLabel: options.tokenLabel,
        rootKeyLabel: options.rootKeyLabel,
        createRootKey: options.createRootKey ?? true,
        callMode: options.callMode ?? "thread-pool",
        source: options.sourceRootKeyFile === undefined ? undefined : FileRoot.openExisting(options.sourceRootKeyFile),
      });
      return new HsmBackend(pool, root, profile, options);
    } catch (err) {
      await pool?.close();
      module.release();
      throw err;
    }
  }

  get lib(): pkcs11js.PKCS11 {
    return this.pool.module.lib;
  }

  accepts(): Acceptance {
    return { ...this.root.ids, hsmKeys: true };
  }

  status(): BackendStatus {
    return {
      backend: hsm.Backend.PKCS11,
      rootKeyId: this.rootKeyId,
      description:
        `PKCS#11 module ${this.options.module}, token ${JSON.stringify(this.options.tokenLabel)}` +
        (this.root.present ? "" : `, NO root key labelled ${JSON.stringify(this.options.rootKeyLabel)} (failing closed)`),
      hsmKeysSupported: true,
      legacyRootKeyId: this.legacyRootKeyId,
      hsmUnsupportedKeySpecs: [...this.profile.hsmUnsupportedSpecs],
      retiringRootKeyIds: this.root.retiringIds,
      sourceRootKeyIds: this.root.sourceIds,
    };
  }

  rewrapKey(key: CheckedKey, field: string): Promise<Rewrap> {
    return this.root.rewrap(key, field);
  }

  beginRootRotation(fromRootKeyId: string): Promise<{ current: string; retiring: string[] }> {
    return this.root.beginRotation(fromRootKeyId);
  }

  retireRoot(rootKeyId: string): Promise<boolean> {
    return this.root.retire(rootKeyId);
  }

  refreshRoots(force = false): Promise<boolean> {
    return this.root.refresh(force);
  }

  async generateKeyMaterial(key: NewKey, label: string): Promise<GeneratedKey> {
    const family = key.family;
    if (family.kind === "aes") {
      // Both levels: generated inside the HSM, wrapped under the level's root, then destroyed.
      const sealed = await withSession(this.pool, (session) =>
        this.sealGenerated(session, key, () => generateAesKey(this.lib, session.handle, family.bytes, label), kwpWrappedBytes(family.bytes) + 16, "root key"),
      );
      return { ...sealed, publicKey: Buffer.alloc(0) };
    }
    if (key.protectionLevel !== kmsResources.ProtectionLevel.HSM) return this.generateSoftwareKey(key);
    this.refuseUnsupported(key);
    if (family.kind === "hmac") {
      const sealed = await withSession(this.pool, (session) =>
        this.sealGenerated(session, key, () => hsmGenerateHmacKey(this.lib, session.handle, family.bytes, label), MAX_WRAPPED_BYTES, "HMAC key"),
      );
      return { ...sealed, publicKey: Buffer.alloc(0) };
    }
    // No profile generates these in the HSM yet (the profiles refuse them above; this keeps it so).
    if (family.kind === "ed25519" || family.kind === "ml-dsa") throw moduleCannotHold(key.keySpec);
    return withSession(this.pool, async (session) => {
      this.root.requireRoot(session); // no root key: refused before anything is generated
      const pair = await hsmGenerateKeyPair(this.lib, session.handle, family, label);
      try {
        const publicKey = hsmPublicKey(this.lib, session.handle, pair.publicKey, family);
        return { ...(await this.root.sealObject(session, key, pair.privateKey, MAX_WRAPPED_BYTES, "private key")), publicKey };
      } finally {
        destroyObject(this.lib, session.handle, pair.privateKey);
        destroyObject(this.lib, session.handle, pair.publicKey);
      }
    });
  }

  /** A secret generated in the HSM, wrapped and sealed for `binding`, then destroyed. */
  private async sealGenerated(session: PooledSession, binding: Binding, generate: () => Promise<pkcs11js.Handle>, outBytes: number, context: string): Promise<Sealed> {
    this.root.requireRoot(session); // no root key: refused before anything is generated
    const object = await generate();
    try {
      return await this.root.sealObject(session, binding, object, outBytes, context);
    } finally {
      destroyObject(this.lib, session.handle, object);
    }
  }

  /** SOFTWARE keys other than AES: made in node:crypto (as on the software-root backend), wrapped here. */
  private async generateSoftwareKey(key: NewKey): Promise<GeneratedKey> {
    const { material, publicKey } = await generateSoftwareMaterial(key.family);
    try {
      return { ...(await this.root.sealMaterial(material, key, "")), publicKey };
    } finally {
      wipe(material);
    }
  }

  generateRandom(numberOfBytes: number): Promise<Buffer> {
    return withSession(this.pool, async (session) =>
      hsmCall("C_GenerateRandom", () => this.lib.C_GenerateRandom(session.handle, Buffer.alloc(numberOfBytes))),
    );
  }

  /** Imported material: wrapped through a short-lived generic secret object under its level's root. */
  async wrapMaterial(material: Buffer, binding: Binding, label: string): Promise<Sealed> {
    if (binding.protectionLevel === kmsResources.ProtectionLevel.HSM) this.refuseUnsupported(binding);
    return this.root.sealMaterial(material, binding, label);
  }

  legacyWrap(material: Buffer, label: string): Promise<Buffer | undefined> {
    return this.root.legacyWrap(material, label);
  }

  metrics(): BackendMetrics {
    return { cachedKeys: this.cachedKeys, sessions: { inUse: this.pool.inUse, waiting: this.pool.waiting } };
  }

  /** Closes the sessions (destroying every session object) and ends this backend's use of the module. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Closing the sessions destroys every session object; the handles are simply forgotten.
    await this.pool.close();
    this.cache.clear();
    this.pool.module.release();
  }

  protected engineFor(key: CheckedKey): KeyEngine {
    return key.protectionLevel === kmsResources.ProtectionLevel.HSM ? this.hsmEngine : this.softwareEngine;
  }

  private refuseUnsupported(binding: Binding): void {
    if (this.profile.hsmUnsupportedSpecs.includes(binding.keySpec)) throw moduleCannotHold(binding.keySpec);
  }
}
