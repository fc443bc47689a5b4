// Wire requests into the backend's checked types. Every key a request carries passes here before a backend
// sees it: checked against the backend's roots (checkWrappedKey), then narrowed to the families the
// operation takes; algorithms become schemes and hashes. Handlers call the backend through onWire.
import { ErrorCode, invalidArgument, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import type { hsm } from "@kms/proto/internal";
import { oaepHash } from "./asymmetric/oaep";
import { signingScheme, signInput } from "./asymmetric/signing-scheme";
import type { ProtoSignInput } from "./asymmetric/signing-scheme";
import { checkWrappedKey, requireFamily } from "./backend";
import type { Backend, CheckedKey, GeneratedKey, NewKey } from "./backend";
import { allowedKeyAgreementAlgorithms, peerPublicKey } from "@kms/key-rules";
import { FIELD_BYTES } from "./asymmetric/ecdsa-signature";
import { checkProtectionLevel, hsmUnsupported, keyFamily, wrongKeyFamily } from "./key-spec";
import type { KeyFamily } from "./key-spec";

const { ProtectionLevel } = kmsResources;

/** A wire key checked for `operation`, which takes the families `kinds`; `field` names it in errors. */
export function checkedKey<K extends KeyFamily["kind"]>(
  backend: Backend,
  key: hsm.WrappedKey | undefined,
  field: string,
  kinds: readonly K[],
  operation: string,
): CheckedKey<Extract<KeyFamily, { kind: K }>> {
  const accepts = backend.accepts();
  if (key?.protectionLevel === ProtectionLevel.HSM && !accepts.hsmKeys) throw hsmUnsupported();
  return requireFamily(checkWrappedKey(key, field, accepts), kinds, field, operation);
}

/** The key version to generate material for, checked. */
export function newKey(
  backend: Backend,
  keySpec: kmsResources.KeySpec,
  protectionLevel: kmsResources.ProtectionLevel,
  keyVersionId: string,
): NewKey {
  if (protectionLevel === ProtectionLevel.HSM && !backend.accepts().hsmKeys) throw hsmUnsupported();
  const family = keyFamily(keySpec, "key_spec");
  checkProtectionLevel(protectionLevel, "protection_level");
  if (keyVersionId === "") throw invalidArgument("key_version_id", "is required");
  return { keyVersionId, keySpec, protectionLevel, family };
}

/** The backend's key operations on wire keys and algorithms, each checked as above. */
export interface WireOperations {
  generateKeyMaterial(
    keySpec: kmsResources.KeySpec,
    protectionLevel: kmsResources.ProtectionLevel,
    keyVersionId: string,
    label?: string,
  ): Promise<GeneratedKey>;
  encrypt(key: hsm.WrappedKey | undefined, plaintext: Uint8Array, aad: Uint8Array, field?: string): Promise<Buffer>;
  decrypt(key: hsm.WrappedKey | undefined, sealed: Uint8Array, aad: Uint8Array, field?: string): Promise<Buffer>;
  sign(key: hsm.WrappedKey | undefined, algorithm: kmsResources.SigningAlgorithm, input: ProtoSignInput): Promise<Buffer>;
  asymmetricDecrypt(key: hsm.WrappedKey | undefined, algorithm: kmsResources.EncryptionAlgorithm, ciphertext: Uint8Array): Promise<Buffer>;
  generateMac(key: hsm.WrappedKey | undefined, message: Uint8Array): Promise<Buffer>;
  deriveSharedSecret(key: hsm.WrappedKey | undefined, publicKey: Uint8Array): Promise<Buffer>;
}

/**
 * Checks throw synchronously; as promises they reject, like the backend's own failures. A root id this
 * worker does not know may be one another replica's worker just made current (root rotation): the roots
 * are read again once (rate-limited in the backend) and the call retried if they changed.
 */
async function checked<T>(backend: Backend, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof KmsError && err.code === ErrorCode.RootKeyMismatch && (await backend.refreshRoots())) return call();
    throw err;
  }
}

export function onWire(backend: Backend): WireOperations {
  return {
    generateKeyMaterial: (keySpec, protectionLevel, keyVersionId, label = keyVersionId) =>
      checked(backend, () => backend.generateKeyMaterial(newKey(backend, keySpec, protectionLevel, keyVersionId), label)),
    encrypt: (key, plaintext, aad, field = "key") =>
      checked(backend, () => backend.encrypt(checkedKey(backend, key, field, ["aes"], "Encrypt"), plaintext, aad, field)),
    decrypt: (key, sealed, aad, field = "key") =>
      checked(backend, () => backend.decrypt(checkedKey(backend, key, field, ["aes"], "Decrypt"), sealed, aad, field)),
    sign: (key, algorithm, input) =>
      checked(backend, () => {
        const signing = checkedKey(backend, key, "key", ["rsa", "ec", "ed25519", "ml-dsa"], "Sign");
        const scheme = signingScheme(signing.family, signing.keySpec, algorithm);
        return backend.sign(signing, scheme, signInput(scheme, input));
      }),
    asymmetricDecrypt: (key, algorithm, ciphertext) =>
      checked(backend, () => {
        const rsa = checkedKey(backend, key, "key", ["rsa"], "AsymmetricDecrypt");
        return backend.asymmetricDecrypt(rsa, oaepHash(algorithm), ciphertext);
      }),
    generateMac: (key, message) => checked(backend, () => backend.generateMac(checkedKey(backend, key, "key", ["hmac"], "GenerateMac"), message)),
    deriveSharedSecret: (key, publicKey) =>
      checked(backend, () => {
        const ec = checkedKey(backend, key, "key", ["ec"], "DeriveSharedSecret");
        if (allowedKeyAgreementAlgorithms(ec.keySpec).length === 0) throw wrongKeyFamily("key.key_spec", ec.keySpec, "DeriveSharedSecret");
        // Checked before the backend sees it: neither C_DeriveKey nor node:crypto gets a bad point.
        const keyObject = peerPublicKey(publicKey, ec.family.curve);
        const point = Buffer.from(publicKey.subarray(publicKey.length - (1 + 2 * FIELD_BYTES[ec.family.curve])));
        return backend.deriveSharedSecret(ec, { keyObject, point });
      }),
  };
}
