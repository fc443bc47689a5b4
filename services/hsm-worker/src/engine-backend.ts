// The key operations every backend answers the same way: by the engine of the key's protection level.
// Backends (pkcs11/hsm-backend.ts, software/software-root.ts) say which engine that is, and make keys.
import type { OaepHash } from "./asymmetric/oaep";
import type { SignInput, SigningScheme } from "./asymmetric/signing-scheme";
import type { AcceptedRoots, AesKey, CheckedKey, EcKey, HmacKey, PeerKey, RsaKey, SigningKey } from "./backend";
import type { KeyEngine } from "./engine";
import type { KeyCache } from "./handle-cache";

export abstract class EngineBackend {
  /** Every engine the backend has, for forgetting keys. */
  protected abstract readonly engines: readonly KeyEngine[];
  /** The unwrapped keys of all of them. */
  protected abstract readonly cache: KeyCache;
  protected abstract engineFor(key: CheckedKey): KeyEngine;
  /** Who wraps: the root ids it holds ("" for a missing root, fail closed, or no legacy root). */
  protected abstract readonly root: { readonly ids: AcceptedRoots };

  /** "" when the backend has no root key (fail closed). */
  get rootKeyId(): string {
    return this.root.ids.current;
  }

  /** The root key of earlier releases, whose format 1 material is still accepted; "" when there is none. */
  get legacyRootKeyId(): string {
    return this.root.ids.legacy;
  }

  encrypt(key: AesKey, plaintext: Uint8Array, aad: Uint8Array, field: string): Promise<Buffer> {
    return this.engineFor(key).encrypt(key, plaintext, aad, field);
  }

  decrypt(key: AesKey, sealed: Uint8Array, aad: Uint8Array, field: string): Promise<Buffer> {
    return this.engineFor(key).decrypt(key, sealed, aad, field);
  }

  sign(key: SigningKey, scheme: SigningScheme, input: SignInput): Promise<Buffer> {
    return this.engineFor(key).sign(key, scheme, input);
  }

  asymmetricDecrypt(key: RsaKey, hash: OaepHash, ciphertext: Uint8Array): Promise<Buffer> {
    return this.engineFor(key).asymmetricDecrypt(key, hash, ciphertext);
  }

  generateMac(key: HmacKey, message: Uint8Array): Promise<Buffer> {
    return this.engineFor(key).generateMac(key, message);
  }

  deriveSharedSecret(key: EcKey, peer: PeerKey): Promise<Buffer> {
    return this.engineFor(key).deriveSharedSecret(key, peer);
  }

  checkKey(key: CheckedKey, field: string): Promise<void> {
    return this.engineFor(key).check(key, field);
  }

  async forgetKeys(keyVersionIds: readonly string[]): Promise<void> {
    const ids = new Set(keyVersionIds);
    for (const engine of this.engines) await engine.forget(ids);
  }

  /** Number of cached unwrapped keys (for tests and metrics). */
  get cachedKeys(): number {
    return this.cache.size;
  }
}
