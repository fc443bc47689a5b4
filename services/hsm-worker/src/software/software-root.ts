// The software-root backend, for a machine without a PKCS#11 module: the file root (file-root.ts) wraps,
// node:crypto (node-engine.ts) uses the keys. Only SOFTWARE keys exist here; PROTECTION_LEVEL_HSM is refused.
import { randomBytes } from "node:crypto";
import { kmsResources } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import type { Acceptance, Backend, BackendMetrics, BackendStatus, CheckedKey, GeneratedKey, NewKey, Rewrap, Sealed } from "../backend";
import { ErrorCode, KmsError } from "@kms/errors";
import { wipe } from "../bytes";
import type { KeyEngine } from "../engine";
import { EngineBackend } from "../engine-backend";
import { LruCache } from "../handle-cache";
import type { KeyCache } from "../handle-cache";
import { hsmUnsupported } from "../key-spec";
import type { Binding } from "../wrapped-format";
import { generateSoftwareMaterial } from "./asymmetric";
import { FileRoot } from "./file-root";
import { NodeCryptoEngine } from "./node-engine";

export class SoftwareRootBackend extends EngineBackend implements Backend {
  private readonly engine: NodeCryptoEngine;
  protected readonly engines: readonly KeyEngine[];
  protected readonly cache: KeyCache;

  private constructor(
    protected readonly root: FileRoot,
    keyCacheSize: number,
  ) {
    super();
    this.cache = new LruCache(keyCacheSize);
    this.engine = new NodeCryptoEngine((key, field) => this.root.unwrapMaterial(key, field), this.cache);
    this.engines = [this.engine];
  }

  /** Opens (or creates) the root key under `dataDir`. */
  static open(dataDir: string, keyCacheSize: number): SoftwareRootBackend {
    return new SoftwareRootBackend(FileRoot.open(dataDir), keyCacheSize);
  }

  accepts(): Acceptance {
    return { ...this.root.ids, hsmKeys: false };
  }

  status(): BackendStatus {
    return {
      backend: hsm.Backend.SOFTWARE_ROOT,
      rootKeyId: this.rootKeyId,
      description: `software root key ${this.root.file}`,
      hsmKeysSupported: false,
      legacyRootKeyId: this.legacyRootKeyId,
      hsmUnsupportedKeySpecs: [],
      retiringRootKeyIds: [],
    };
  }

  /** Format 1 rows (under the file's key) become format 2 under the derived keys; nothing else moves here. */
  async rewrapKey(key: CheckedKey, field: string): Promise<Rewrap> {
    if (key.format === "v2") return { outcome: "current" };
    const material = this.root.unwrapMaterial(key, field);
    try {
      return { outcome: "rewrapped", wrappedMaterial: this.root.seal(material, key), rootKeyId: this.rootKeyId };
    } finally {
      wipe(material);
    }
  }

  async beginRootRotation(): Promise<never> {
    throw noRotation();
  }

  async retireRoot(): Promise<never> {
    throw noRotation();
  }

  async refreshRoots(): Promise<boolean> {
    return false;
  }

  async generateKeyMaterial(key: NewKey): Promise<GeneratedKey> {
    this.refuseHsm(key);
    const family = key.family;
    const { material, publicKey } = family.kind === "aes" ? { material: randomBytes(family.bytes), publicKey: Buffer.alloc(0) } : await generateSoftwareMaterial(family);
    try {
      return { wrappedMaterial: this.root.seal(material, key), rootKeyId: this.rootKeyId, publicKey };
    } finally {
      wipe(material);
    }
  }

  async generateRandom(numberOfBytes: number): Promise<Buffer> {
    return randomBytes(numberOfBytes);
  }

  async wrapMaterial(material: Buffer, binding: Binding): Promise<Sealed> {
    this.refuseHsm(binding);
    return { wrappedMaterial: this.root.seal(material, binding), rootKeyId: this.rootKeyId };
  }

  async legacyWrap(material: Buffer): Promise<Buffer> {
    return this.root.legacyWrap(material);
  }

  metrics(): BackendMetrics {
    return { cachedKeys: this.cachedKeys };
  }

  async close(): Promise<void> {
    this.cache.clear();
  }

  protected engineFor(key: CheckedKey): KeyEngine {
    this.refuseHsm(key);
    return this.engine;
  }

  private refuseHsm(binding: Binding): void {
    if (binding.protectionLevel === kmsResources.ProtectionLevel.HSM) throw hsmUnsupported();
  }
}

/** A file root has no token to hold a second root: rotate onto a PKCS#11 token instead. */
function noRotation(): KmsError {
  return new KmsError(ErrorCode.HsmUnsupported, "root rotation needs a PKCS#11 token: a worker on the software root key can only re-wrap format 1 rows (RewrapKeys)");
}
