// "Where a key is used": in the HSM as a sensitive session object (pkcs11/pkcs11-engine.ts), or in the
// worker as a node:crypto KeyObject (software/node-engine.ts). A backend pairs a root ("who wraps":
// pkcs11/pkcs11-root.ts, software/file-root.ts) with an engine per protection level. Engines unwrap keys
// through their root on first use and keep them in the backend's LRU cache (handle-cache.ts), keyed by
// version id, spec and level.
import type { OaepHash } from "./asymmetric/oaep";
import type { SignInput, SigningScheme } from "./asymmetric/signing-scheme";
import type { AesKey, CheckedKey, EcKey, HmacKey, PeerKey, RsaKey, SigningKey } from "./backend";

export interface KeyEngine {
  encrypt(key: AesKey, plaintext: Uint8Array, aad: Uint8Array, field: string): Promise<Buffer>;
  decrypt(key: AesKey, sealed: Uint8Array, aad: Uint8Array, field: string): Promise<Buffer>;
  sign(key: SigningKey, scheme: SigningScheme, input: SignInput): Promise<Buffer>;
  asymmetricDecrypt(key: RsaKey, hash: OaepHash, ciphertext: Uint8Array): Promise<Buffer>;
  generateMac(key: HmacKey, message: Uint8Array): Promise<Buffer>;
  deriveSharedSecret(key: EcKey, peer: PeerKey): Promise<Buffer>;
  /**
   * Authenticates and unwraps `key` into a key of its spec, and discards it at once (destroyed in the HSM,
   * or wiped); nothing is cached or used. unwrapFailed() when it does not unwrap (verify-restore).
   */
  check(key: CheckedKey, field: string): Promise<void>;
  /** Drops the cached keys of these versions. */
  forget(keyVersionIds: ReadonlySet<string>): Promise<void>;
}
