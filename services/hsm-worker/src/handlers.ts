// One function per operation: validate the request, call the backend (through checked-calls.ts, which
// turns wire keys into checked ones), build the response. Errors are thrown (KmsError for the caller,
// anything else internal); server.ts and batch.ts turn them into statuses and outcomes. operations.ts
// registers each one.
import { create } from "@bufbuild/protobuf";
import { invalidArgument } from "@kms/errors";
import { hsm } from "@kms/proto/internal";
import { mlDsaPublicKeyOf, mlDsaVerify } from "./asymmetric/ml-dsa";
import { parsePublicKey } from "./asymmetric/public-key";
import { MAX_MESSAGE_BYTES, MAX_RANDOM_BYTES } from "@kms/key-rules";
import { signingScheme, signInput } from "./asymmetric/signing-scheme";
import { verifySignature } from "./asymmetric/verify";
import type { Backend } from "./backend";
import { wipe } from "./bytes";
import { onWire } from "./checked-calls";
import { importKeyMaterial as importMaterial } from "./import/import-material";
import { keyFamily } from "./key-spec";
import { macMatches } from "./mac";

/** A response and the buffers to zero once it has been serialised. */
export interface Reply<T> {
  response: T;
  wipeAfterSend?: Buffer[];
}

const MAX_LABEL_LENGTH = 128;

function checkByteCount(field: string, n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_RANDOM_BYTES) {
    throw invalidArgument(field, `must be between 1 and ${MAX_RANDOM_BYTES}, got ${n}`);
  }
}

/** Reads the roots again first (kms-api asks after a rotation step, for every replica's worker). */
export async function getStatus(backend: Backend): Promise<Reply<hsm.GetStatusResponse>> {
  await backend.refreshRoots();
  const s = backend.status();
  return {
    response: create(hsm.GetStatusResponseSchema, {
      backend: s.backend,
      rootKeyId: s.rootKeyId,
      description: s.description,
      hsmKeysSupported: s.hsmKeysSupported,
      legacyRootKeyId: s.legacyRootKeyId,
      hsmUnsupportedKeySpecs: s.hsmUnsupportedKeySpecs,
      retiringRootKeyIds: s.retiringRootKeyIds,
      sourceRootKeyIds: s.sourceRootKeyIds ?? [],
    }),
  };
}

export async function generateKeyMaterial(
  backend: Backend,
  req: hsm.GenerateKeyMaterialRequest,
): Promise<Reply<hsm.GenerateKeyMaterialResponse>> {
  if (req.label.length > MAX_LABEL_LENGTH) throw invalidArgument("label", `must be at most ${MAX_LABEL_LENGTH} characters`);
  const generated = await onWire(backend).generateKeyMaterial(req.keySpec, req.protectionLevel, req.keyVersionId, req.label);
  return {
    response: create(hsm.GenerateKeyMaterialResponseSchema, {
      wrappedMaterial: generated.wrappedMaterial,
      rootKeyId: generated.rootKeyId,
      publicKey: generated.publicKey,
    }),
  };
}

export async function encrypt(backend: Backend, req: hsm.EncryptRequest): Promise<Reply<hsm.EncryptResponse>> {
  const sealed = await onWire(backend).encrypt(req.key, req.plaintext, req.aad);
  return { response: create(hsm.EncryptResponseSchema, { sealed }) };
}

export async function decrypt(backend: Backend, req: hsm.DecryptRequest): Promise<Reply<hsm.DecryptResponse>> {
  const plaintext = await onWire(backend).decrypt(req.key, req.sealed, req.aad);
  return { response: create(hsm.DecryptResponseSchema, { plaintext }), wipeAfterSend: [plaintext] };
}

export async function reEncrypt(backend: Backend, req: hsm.ReEncryptRequest): Promise<Reply<hsm.ReEncryptResponse>> {
  const wire = onWire(backend);
  const plaintext = await wire.decrypt(req.sourceKey, req.sourceSealed, req.sourceAad, "source_key");
  try {
    const sealed = await wire.encrypt(req.destinationKey, plaintext, req.destinationAad, "destination_key");
    return { response: create(hsm.ReEncryptResponseSchema, { sealed }) };
  } finally {
    // The plaintext never leaves the worker.
    wipe(plaintext);
  }
}

export async function generateDataKey(
  backend: Backend,
  req: hsm.GenerateDataKeyRequest,
): Promise<Reply<hsm.GenerateDataKeyResponse>> {
  checkByteCount("number_of_bytes", req.numberOfBytes);
  const dataKey = await backend.generateRandom(req.numberOfBytes);
  const sealed = await sealFreshSecret(backend, req.key, dataKey, req.aad, req.returnPlaintext);
  if (!req.returnPlaintext) return { response: create(hsm.GenerateDataKeyResponseSchema, { sealed }) };
  return { response: create(hsm.GenerateDataKeyResponseSchema, { plaintext: dataKey, sealed }), wipeAfterSend: [dataKey] };
}

/**
 * Seals a secret the worker just made (a data key, a data key pair's private key) under `key` as Encrypt
 * seals. The secret is wiped here when sealing fails or the caller does not get it back (`returned`
 * false); otherwise the reply wipes it once it is sent.
 */
export async function sealFreshSecret(
  backend: Backend,
  key: hsm.WrappedKey | undefined,
  secret: Buffer,
  aad: Uint8Array,
  returned: boolean,
): Promise<Buffer> {
  try {
    return await onWire(backend).encrypt(key, secret, aad);
  } catch (err) {
    wipe(secret);
    throw err;
  } finally {
    if (!returned) wipe(secret);
  }
}

export async function generateRandom(
  backend: Backend,
  req: hsm.GenerateRandomRequest,
): Promise<Reply<hsm.GenerateRandomResponse>> {
  checkByteCount("number_of_bytes", req.numberOfBytes);
  return { response: create(hsm.GenerateRandomResponseSchema, { random: await backend.generateRandom(req.numberOfBytes) }) };
}

export async function forgetKeys(backend: Backend, req: hsm.ForgetKeysRequest): Promise<Reply<hsm.ForgetKeysResponse>> {
  await backend.forgetKeys(req.keyVersionIds);
  return { response: create(hsm.ForgetKeysResponseSchema, {}) };
}

function checkMessage(message: Uint8Array): void {
  if (message.length < 1 || message.length > MAX_MESSAGE_BYTES) {
    throw invalidArgument("message", `must be 1 to ${MAX_MESSAGE_BYTES} bytes, got ${message.length}`);
  }
}

export async function sign(backend: Backend, req: hsm.SignRequest): Promise<Reply<hsm.SignResponse>> {
  const signature = await onWire(backend).sign(req.key, req.algorithm, req.input);
  return { response: create(hsm.SignResponseSchema, { signature }) };
}

/** Public-key work only: no backend, no key material. */
export async function verify(req: hsm.VerifyRequest): Promise<Reply<hsm.VerifyResponse>> {
  const family = keyFamily(req.keySpec, "key_spec");
  const scheme = signingScheme(family, req.keySpec, req.algorithm);
  const input = signInput(scheme, req.input);
  if (scheme.kind === "ml-dsa") {
    if (input.kind === "digest") throw invalidArgument("message", "or external_mu is required for ML_DSA_SHAKE_256");
    const raw = mlDsaPublicKeyOf(req.publicKey, scheme.level);
    if (raw === undefined) throw invalidArgument("public_key", "is not an ML-DSA SubjectPublicKeyInfo of the key spec");
    return { response: create(hsm.VerifyResponseSchema, { valid: mlDsaVerify(scheme.level, raw, input, req.signature) }) };
  }
  const publicKey = parsePublicKey(req.publicKey, family);
  return { response: create(hsm.VerifyResponseSchema, { valid: verifySignature(publicKey, scheme, input, req.signature) }) };
}

export async function asymmetricDecrypt(
  backend: Backend,
  req: hsm.AsymmetricDecryptRequest,
): Promise<Reply<hsm.AsymmetricDecryptResponse>> {
  const plaintext = await onWire(backend).asymmetricDecrypt(req.key, req.algorithm, req.ciphertext);
  return { response: create(hsm.AsymmetricDecryptResponseSchema, { plaintext }), wipeAfterSend: [plaintext] };
}

export async function deriveSharedSecret(backend: Backend, req: hsm.DeriveSharedSecretRequest): Promise<Reply<hsm.DeriveSharedSecretResponse>> {
  const sharedSecret = await onWire(backend).deriveSharedSecret(req.key, req.publicKey);
  return { response: create(hsm.DeriveSharedSecretResponseSchema, { sharedSecret }), wipeAfterSend: [sharedSecret] };
}

export async function generateMac(backend: Backend, req: hsm.GenerateMacRequest): Promise<Reply<hsm.GenerateMacResponse>> {
  checkMessage(req.message);
  return { response: create(hsm.GenerateMacResponseSchema, { mac: await onWire(backend).generateMac(req.key, req.message) }) };
}

export async function verifyMac(backend: Backend, req: hsm.VerifyMacRequest): Promise<Reply<hsm.VerifyMacResponse>> {
  checkMessage(req.message);
  const expected = await onWire(backend).generateMac(req.key, req.message);
  try {
    return { response: create(hsm.VerifyMacResponseSchema, { macValid: macMatches(expected, req.mac) }) };
  } finally {
    wipe(expected);
  }
}

export async function importKeyMaterial(backend: Backend, req: hsm.ImportKeyMaterialRequest): Promise<Reply<hsm.ImportKeyMaterialResponse>> {
  if (req.label.length > MAX_LABEL_LENGTH) throw invalidArgument("label", `must be at most ${MAX_LABEL_LENGTH} characters`);
  return { response: await importMaterial(backend, req) };
}
