// The software-root backend, for a machine without a PKCS#11 module: a 32-byte root key in a 0600 file
// stands in for the HSM. Only SOFTWARE keys exist here; PROTECTION_LEVEL_HSM is refused.
import { createHash, createSecretKey, randomBytes } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import path from "node:path";
import type { kmsResources } from "@kms/proto";
import { hsm, kmsResources as resources } from "@kms/proto";
import type { Backend, BackendStatus } from "../backend";
import { checkWrappedKey, unwrapFailed } from "../backend";
import { asBuffer, wipe } from "../bytes";
import { LruCache } from "../handle-cache";
import { aesKeyBytes, checkProtectionLevel, hsmUnsupported } from "../key-spec";
import { openGcm, sealGcm } from "./aes-gcm";
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
  ): Promise<Uint8Array> {
    if (protectionLevel === resources.ProtectionLevel.HSM) throw hsmUnsupported();
    const keyBytes = aesKeyBytes(keySpec, "key_spec");
    checkProtectionLevel(protectionLevel, "protection_level");
    const material = randomBytes(keyBytes);
    try {
      return kwpWrap(this.rootKey, material);
    } finally {
      wipe(material);
    }
  }

  async encrypt(key: hsm.WrappedKey | undefined, plaintext: Uint8Array, aad: Uint8Array, field = "key"): Promise<Buffer> {
    return sealGcm(this.keyObject(key, field), plaintext, aad);
  }

  async decrypt(key: hsm.WrappedKey | undefined, sealed: Uint8Array, aad: Uint8Array, field = "key"): Promise<Buffer> {
    return openGcm(this.keyObject(key, field), sealed, aad);
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

  private keyObject(key: hsm.WrappedKey | undefined, field: string): KeyObject {
    if (key?.protectionLevel === resources.ProtectionLevel.HSM) throw hsmUnsupported();
    const checked = checkWrappedKey(key, field, this.rootKeyId);
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
      if (material.length !== checked.keyBytes) throw unwrapFailed(field);
      const keyObject = createSecretKey(material);
      this.cache.set(checked.keyVersionId, { wrapped: Buffer.from(wrapped), key: keyObject });
      return keyObject;
    } finally {
      wipe(material);
    }
  }
}
