// The software-root backend, for a machine without a PKCS#11 module: a 32-byte root key in a 0600 file
// stands in for the HSM. Only SOFTWARE keys exist here; PROTECTION_LEVEL_HSM is refused.
//
// New material is format 2 (wrapped-format.ts), as on the PKCS#11 backend: wrapped under a key derived
// from the file's key, and tagged with another derived key over its version id, spec and level, so a blob
// cannot be presented as another version or spec. Material wrapped directly under the file's key by
// earlier releases (format 1, the legacy root id) still unwraps; its spec is taken from the caller.
import { createHash, createHmac, createSecretKey, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import path from "node:path";
import type { kmsResources } from "@kms/proto";
import { hsm, kmsResources as resources } from "@kms/proto";
import { oaepHash } from "../asymmetric/oaep";
import { signingScheme, signInput } from "../asymmetric/signing-scheme";
import type { ProtoSignInput } from "../asymmetric/signing-scheme";
import type { Backend, BackendStatus, CheckedKey, GeneratedKey } from "../backend";
import { checkWrappedKey, requireFamily, unwrapFailed } from "../backend";
import { asBuffer, wipe } from "../bytes";
import { LruCache } from "../handle-cache";
import { checkProtectionLevel, hsmUnsupported, keyFamily } from "../key-spec";
import type { KeyFamily } from "../key-spec";
import { joinFormat2, tagInput } from "../wrapped-format";
import type { Binding } from "../wrapped-format";
import { invalidArgument } from "@kms/errors";
import { unwrappedKeySlot } from "../handle-cache";
import { openGcm, sealGcm } from "./aes-gcm";
import { generateSoftwareMaterial, MaterialMismatchError, softwareDecrypt, softwareKey, softwareMac, softwareSign } from "./asymmetric";
import { kwpUnwrap, kwpWrap, UnwrapError } from "./key-wrap";

const ROOT_KEY_BYTES = 32;

interface CachedKey {
  keyVersionId: string;
  wrapped: Buffer;
  key: KeyObject;
}

/** The keys made from the root file. */
interface SoftwareRoots {
  /** The file's key: unwraps format 1 only. */
  legacy: KeyObject;
  legacyId: string;
  wrap: KeyObject;
  mac: KeyObject;
  id: string;
}

/**
 * Root key id of format 1 material (wrapped directly under the file's key): derived from the key (never the
 * key itself), so the same file always gives the same id.
 */
export function softwareRootKeyId(rootKey: Buffer): string {
  return createHash("sha256").update("kms-root-key-id").update(rootKey).digest().subarray(0, 16).toString("hex");
}

/** Root key id of format 2 material: another id, because it is other keys (derived below). */
export function softwareRootKeyIdV2(rootKey: Buffer): string {
  return createHash("sha256").update("kms-root-key-id-v2").update(rootKey).digest().subarray(0, 16).toString("hex");
}

/** A key derived from the file's key for one purpose (HKDF-SHA256, RFC 5869). */
function derivedKey(rootKey: Buffer, purpose: string): KeyObject {
  const bytes = Buffer.from(hkdfSync("sha256", rootKey, Buffer.alloc(0), `kms software root v2 ${purpose}`, 32));
  try {
    return createSecretKey(bytes);
  } finally {
    wipe(bytes);
  }
}

/** Reads `${dataDir}/root-key`, creating it (0600, directory 0700) on first start. */
function loadOrCreateRootKey(file: string): Buffer {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  let fd: number;
  try {
    // "wx": exactly one process creates the key, even when two start at once.
    fd = openSync(file, "wx", 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    return readRootKey(file);
  }
  const key = randomBytes(ROOT_KEY_BYTES);
  try {
    writeSync(fd, key);
  } finally {
    closeSync(fd);
  }
  return key;
}

function readRootKey(file: string): Buffer {
  const fd = openSync(file, "r");
  try {
    const mode = fstatSync(fd).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new Error(`root key file ${file} has mode ${mode.toString(8)}; it must be readable by its owner only (chmod 600)`);
    }
    const key = readFileSync(fd);
    if (key.length !== ROOT_KEY_BYTES) {
      wipe(key);
      throw new Error(`root key file ${file} must hold ${ROOT_KEY_BYTES} bytes, has ${key.length}`);
    }
    return key;
  } finally {
    closeSync(fd);
  }
}

export class SoftwareRootBackend implements Backend {
  private readonly cache: LruCache<CachedKey>;

  private constructor(
    readonly rootKeyFile: string,
    private readonly roots: SoftwareRoots,
    keyCacheSize: number,
  ) {
    this.cache = new LruCache(keyCacheSize);
  }

  get rootKeyId(): string {
    return this.roots.id;
  }

  get legacyRootKeyId(): string {
    return this.roots.legacyId;
  }

  /** Opens (or creates) the root key under `dataDir`. */
  static open(dataDir: string, keyCacheSize: number): SoftwareRootBackend {
    const file = path.join(dataDir, "root-key");
    const raw = loadOrCreateRootKey(file);
    try {
      const roots: SoftwareRoots = {
        legacy: createSecretKey(raw),
        legacyId: softwareRootKeyId(raw),
        wrap: derivedKey(raw, "wrap"),
        mac: derivedKey(raw, "mac"),
        id: softwareRootKeyIdV2(raw),
      };
      return new SoftwareRootBackend(file, roots, keyCacheSize);
    } finally {
      wipe(raw);
    }
  }

  get cachedKeys(): number {
    return this.cache.size;
  }

  status(): BackendStatus {
    return {
      backend: hsm.Backend.SOFTWARE_ROOT,
      rootKeyId: this.rootKeyId,
      description: `software root key ${this.rootKeyFile}`,
      hsmKeysSupported: false,
      legacyRootKeyId: this.legacyRootKeyId,
      hsmUnsupportedKeySpecs: [],
    };
  }

  async generateKeyMaterial(
    keySpec: kmsResources.KeySpec,
    protectionLevel: kmsResources.ProtectionLevel,
    keyVersionId: string,
  ): Promise<GeneratedKey> {
    if (protectionLevel === resources.ProtectionLevel.HSM) throw hsmUnsupported();
    const family = keyFamily(keySpec, "key_spec");
    checkProtectionLevel(protectionLevel, "protection_level");
    if (keyVersionId === "") throw invalidArgument("key_version_id", "is required");
    const { material, publicKey } = family.kind === "aes" ? { material: randomBytes(family.bytes), publicKey: Buffer.alloc(0) } : await generateSoftwareMaterial(family);
    try {
      return { wrappedMaterial: this.seal(material, { keyVersionId, keySpec, protectionLevel }), publicKey };
    } finally {
      wipe(material);
    }
  }

  async encrypt(key: hsm.WrappedKey | undefined, plaintext: Uint8Array, aad: Uint8Array, field = "key"): Promise<Buffer> {
    return sealGcm(this.keyObject(key, field, ["aes"], "Encrypt"), plaintext, aad);
  }

  async decrypt(key: hsm.WrappedKey | undefined, sealed: Uint8Array, aad: Uint8Array, field = "key"): Promise<Buffer> {
    return openGcm(this.keyObject(key, field, ["aes"], "Decrypt"), sealed, aad);
  }

  async sign(key: hsm.WrappedKey | undefined, algorithm: kmsResources.SigningAlgorithm, input: ProtoSignInput): Promise<Buffer> {
    const checked = this.check(key, "key", ["rsa", "ec", "ed25519"], "Sign");
    const scheme = signingScheme(checked.family, checked.keySpec, algorithm);
    const signed = signInput(scheme, input);
    return softwareSign(this.keyObjectOf(checked, "key"), scheme, signed);
  }

  async asymmetricDecrypt(
    key: hsm.WrappedKey | undefined,
    algorithm: kmsResources.EncryptionAlgorithm,
    ciphertext: Uint8Array,
  ): Promise<Buffer> {
    const checked = this.check(key, "key", ["rsa"], "AsymmetricDecrypt");
    const hash = oaepHash(algorithm);
    return softwareDecrypt(this.keyObjectOf(checked, "key"), hash, ciphertext);
  }

  async generateMac(key: hsm.WrappedKey | undefined, message: Uint8Array): Promise<Buffer> {
    const checked = this.check(key, "key", ["hmac"], "GenerateMac");
    return softwareMac(this.keyObjectOf(checked, "key"), checked.family.hash, message);
  }

  async generateRandom(numberOfBytes: number): Promise<Buffer> {
    return randomBytes(numberOfBytes);
  }

  async forgetKeys(keyVersionIds: readonly string[]): Promise<void> {
    const ids = new Set(keyVersionIds);
    this.cache.deleteWhere((e) => ids.has(e.keyVersionId));
  }

  async close(): Promise<void> {
    this.cache.clear();
  }

  async wrapMaterial(material: Buffer, binding: Binding): Promise<Buffer> {
    if (binding.protectionLevel === resources.ProtectionLevel.HSM) throw hsmUnsupported();
    return this.seal(material, binding);
  }

  async legacyWrap(material: Buffer): Promise<Buffer> {
    return kwpWrap(this.roots.legacy, material);
  }

  /** Format 2: wrapped under the derived wrapping key, tagged for `binding`. */
  private seal(material: Buffer, binding: Binding): Buffer {
    const kwp = kwpWrap(this.roots.wrap, material);
    return joinFormat2(kwp, this.tag(binding, kwp));
  }

  private tag(binding: Binding, kwp: Buffer): Buffer {
    return createHmac("sha256", this.roots.mac).update(tagInput(binding, kwp)).digest();
  }

  private check<K extends KeyFamily["kind"]>(key: hsm.WrappedKey | undefined, field: string, kinds: readonly K[], operation: string) {
    if (key?.protectionLevel === resources.ProtectionLevel.HSM) throw hsmUnsupported();
    return requireFamily(checkWrappedKey(key, field, { current: this.roots.id, legacy: this.roots.legacyId }), kinds, field, operation);
  }

  private keyObject(key: hsm.WrappedKey | undefined, field: string, kinds: readonly KeyFamily["kind"][], operation: string): KeyObject {
    return this.keyObjectOf(this.check(key, field, kinds, operation), field);
  }

  /** The KeyObject of a checked key, from the cache or unwrapped now (format 2 after its tag matched). */
  private keyObjectOf(checked: CheckedKey, field: string): KeyObject {
    const wrapped = asBuffer(checked.wrappedMaterial);
    const slot = unwrappedKeySlot(checked);
    const cached = this.cache.get(slot);
    if (cached !== undefined && cached.wrapped.equals(wrapped)) return cached.key;
    if (checked.format === "v2") {
      const expected = this.tag(checked, checked.kwp);
      if (!timingSafeEqual(expected, checked.tag)) throw unwrapFailed(field);
    }
    let material: Buffer;
    try {
      material = kwpUnwrap(checked.format === "v2" ? this.roots.wrap : this.roots.legacy, checked.kwp);
    } catch (err) {
      if (err instanceof UnwrapError) throw unwrapFailed(field);
      throw err;
    }
    try {
      const keyObject = softwareKey(checked.family, material);
      this.cache.set(slot, { keyVersionId: checked.keyVersionId, wrapped: Buffer.from(wrapped), key: keyObject });
      return keyObject;
    } catch (err) {
      if (err instanceof MaterialMismatchError) throw unwrapFailed(field);
      throw err;
    } finally {
      wipe(material);
    }
  }
}
