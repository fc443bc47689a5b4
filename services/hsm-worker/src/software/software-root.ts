// The software-root backend, for a machine without a PKCS#11 module: a 32-byte root key in a 0600 file
// stands in for the HSM. Only SOFTWARE keys exist here; PROTECTION_LEVEL_HSM is refused.
import { createHash, createSecretKey, randomBytes } from "node:crypto";
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
import { openGcm, sealGcm } from "./aes-gcm";
import { generateSoftwareMaterial, MaterialMismatchError, softwareDecrypt, softwareKey, softwareMac, softwareSign } from "./asymmetric";
import { kwpUnwrap, kwpWrap, UnwrapError } from "./key-wrap";

const ROOT_KEY_BYTES = 32;

interface CachedKey {
  wrapped: Buffer;
  key: KeyObject;
}

/** Root key id: derived from the key (never the key itself), so the same file always gives the same id. */
export function softwareRootKeyId(rootKey: Buffer): string {
  return createHash("sha256").update("kms-root-key-id").update(rootKey).digest().subarray(0, 16).toString("hex");
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
    private readonly rootKey: KeyObject,
    readonly rootKeyId: string,
    keyCacheSize: number,
  ) {
    this.cache = new LruCache(keyCacheSize);
  }

  /** Opens (or creates) the root key under `dataDir`. */
  static open(dataDir: string, keyCacheSize: number): SoftwareRootBackend {
    const file = path.join(dataDir, "root-key");
    const raw = loadOrCreateRootKey(file);
    try {
      return new SoftwareRootBackend(file, createSecretKey(raw), softwareRootKeyId(raw), keyCacheSize);
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
    };
  }

  async generateKeyMaterial(
    keySpec: kmsResources.KeySpec,
    protectionLevel: kmsResources.ProtectionLevel,
  ): Promise<GeneratedKey> {
    if (protectionLevel === resources.ProtectionLevel.HSM) throw hsmUnsupported();
    const family = keyFamily(keySpec, "key_spec");
    checkProtectionLevel(protectionLevel, "protection_level");
    const { material, publicKey } = family.kind === "aes" ? { material: randomBytes(family.bytes), publicKey: Buffer.alloc(0) } : await generateSoftwareMaterial(family);
    try {
      return { wrappedMaterial: kwpWrap(this.rootKey, material), publicKey };
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
    for (const id of keyVersionIds) this.cache.delete(id);
  }

  async close(): Promise<void> {
    this.cache.clear();
  }

  async wrapMaterial(material: Buffer): Promise<Buffer> {
    return kwpWrap(this.rootKey, material);
  }

  private check<K extends KeyFamily["kind"]>(key: hsm.WrappedKey | undefined, field: string, kinds: readonly K[], operation: string) {
    if (key?.protectionLevel === resources.ProtectionLevel.HSM) throw hsmUnsupported();
    return requireFamily(checkWrappedKey(key, field, this.rootKeyId), kinds, field, operation);
  }

  private keyObject(key: hsm.WrappedKey | undefined, field: string, kinds: readonly KeyFamily["kind"][], operation: string): KeyObject {
    return this.keyObjectOf(this.check(key, field, kinds, operation), field);
  }

  /** The KeyObject of a checked key, from the cache or unwrapped now. */
  private keyObjectOf(checked: CheckedKey, field: string): KeyObject {
    const wrapped = asBuffer(checked.wrappedMaterial);
    const cached = this.cache.get(checked.keyVersionId);
    if (cached !== undefined && cached.wrapped.equals(wrapped)) return cached.key;
    let material: Buffer;
    try {
      material = kwpUnwrap(this.rootKey, wrapped);
    } catch (err) {
      if (err instanceof UnwrapError) throw unwrapFailed(field);
      throw err;
    }
    try {
      const keyObject = softwareKey(checked.family, material);
      this.cache.set(checked.keyVersionId, { wrapped: Buffer.from(wrapped), key: keyObject });
      return keyObject;
    } catch (err) {
      if (err instanceof MaterialMismatchError) throw unwrapFailed(field);
      throw err;
    } finally {
      wipe(material);
    }
  }
}
