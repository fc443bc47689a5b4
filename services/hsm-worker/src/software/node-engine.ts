// "Where the key is used" for SOFTWARE keys (and every key of the software-root backend): the root unwraps
// the material, which becomes a node:crypto KeyObject or an ML-DSA key (the bytes are wiped at once), cached (LRU) by
// version id, spec and level and compared by wrapped bytes. A cached key needs nothing of its root, and
// nothing is freed when it leaves the cache (the garbage collector has the KeyObject).
import { diffieHellman } from "node:crypto";
import type { KeyObject } from "node:crypto";
import type { OaepHash } from "../asymmetric/oaep";
import type { SignInput, SigningScheme } from "../asymmetric/signing-scheme";
import type { AesKey, CheckedKey, EcKey, HmacKey, PeerKey, RsaKey, SigningKey } from "../backend";
import { unwrapFailed } from "../backend";
import { asBuffer, wipe } from "../bytes";
import type { KeyEngine } from "../engine";
import { unwrappedKeySlot } from "../handle-cache";
import type { CachedKey, KeyCache } from "../handle-cache";
import { openGcm, sealGcm } from "./aes-gcm";
import { keyObject, MaterialMismatchError, softwareDecrypt, softwareKey, softwareMac, softwareSign } from "./asymmetric";
import type { SoftwareKey } from "./asymmetric";

/** The root's half: a checked key's raw material (authenticated first for format 2); the engine wipes it. */
export type UnwrapMaterial = (key: CheckedKey, field: string) => Buffer | Promise<Buffer>;

interface KeyObjectEntry extends CachedKey {
  key: SoftwareKey;
}

const nothingToFree = (): void => {};

export class NodeCryptoEngine implements KeyEngine {
  constructor(
    private readonly unwrapMaterial: UnwrapMaterial,
    private readonly cache: KeyCache,
  ) {}

  async encrypt(key: AesKey, plaintext: Uint8Array, aad: Uint8Array, field: string): Promise<Buffer> {
    return sealGcm(keyObject(this.cached(key) ?? (await this.unwrap(key, field))), plaintext, aad);
  }

  async decrypt(key: AesKey, sealed: Uint8Array, aad: Uint8Array, field: string): Promise<Buffer> {
    return openGcm(keyObject(this.cached(key) ?? (await this.unwrap(key, field))), sealed, aad);
  }

  async sign(key: SigningKey, scheme: SigningScheme, input: SignInput): Promise<Buffer> {
    return softwareSign(this.cached(key) ?? (await this.unwrap(key, "key")), scheme, input);
  }

  async asymmetricDecrypt(key: RsaKey, hash: OaepHash, ciphertext: Uint8Array): Promise<Buffer> {
    return softwareDecrypt(keyObject(this.cached(key) ?? (await this.unwrap(key, "key"))), hash, ciphertext);
  }

  async generateMac(key: HmacKey, message: Uint8Array): Promise<Buffer> {
    return softwareMac(keyObject(this.cached(key) ?? (await this.unwrap(key, "key"))), key.family.hash, message);
  }

  /** ECDH in node:crypto (OpenSSL): the x-coordinate, the field's length. */
  async deriveSharedSecret(key: EcKey, peer: PeerKey): Promise<Buffer> {
    return diffieHellman({ privateKey: keyObject(this.cached(key) ?? (await this.unwrap(key, "key"))), publicKey: peer.keyObject });
  }

  /** Unwraps and checks the material against the spec, then drops it (the bytes wiped, no key kept). */
  async check(key: CheckedKey, field: string): Promise<void> {
    await this.keyObject(key, field);
  }

  async forget(keyVersionIds: ReadonlySet<string>): Promise<void> {
    for (const entry of this.cache.deleteWhere((e) => e.engine === this && keyVersionIds.has(e.keyVersionId))) entry.evicted();
  }

  /** The cached KeyObject of exactly this key (version, spec, level and wrapped bytes), if any. */
  private cached(checked: CheckedKey): SoftwareKey | undefined {
    const entry = this.cache.get(unwrappedKeySlot(checked));
    return entry?.engine === this && entry.wrapped.equals(asBuffer(checked.wrappedMaterial)) ? (entry as KeyObjectEntry).key : undefined;
  }

  private async unwrap(checked: CheckedKey, field: string): Promise<SoftwareKey> {
    const key = await this.keyObject(checked, field);
    const entry: KeyObjectEntry = { engine: this, keyVersionId: checked.keyVersionId, wrapped: Buffer.from(checked.wrappedMaterial), key, evicted: nothingToFree };
    for (const old of this.cache.set(unwrappedKeySlot(checked), entry)) old.evicted();
    return key;
  }

  /** The material as a key checked against the spec (a KeyObject, or an ML-DSA key); the unwrapped bytes are wiped. */
  private async keyObject(checked: CheckedKey, field: string): Promise<SoftwareKey> {
    const material = await this.unwrapMaterial(checked, field);
    try {
      return softwareKey(checked.family, material);
    } catch (err) {
      if (err instanceof MaterialMismatchError) throw unwrapFailed(field);
      throw err;
    } finally {
      wipe(material);
    }
  }
}
