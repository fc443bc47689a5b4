// Encrypt, Decrypt, ReEncrypt, GenerateDataKey(WithoutPlaintext), GenerateDataKeyPair(WithoutPlaintext),
// GenerateRandom.
// Symmetric requests run kms.v1 Encrypt/Decrypt; an RSAES_OAEP_* EncryptionAlgorithm runs
// AsymmetricEncrypt/AsymmetricDecrypt. Ciphertexts are the service's own blobs either way, so one made
// through either front decrypts through the other.
import { parseBlob } from "@kms/ciphertext";
import { ErrorCode, KmsError, invalidArgument } from "@kms/errors";
import { kms, kmsResources } from "@kms/proto";
import type { CallContext, Services } from "../../context";

import type { Access } from "../../keys";
import { unsupported } from "./errors";
import { base64 } from "./json";
import type { Members } from "./json";
import { awsOperation } from "./operation";
import type { AwsEntry, AwsOperation } from "./operation";
import { ENCRYPTION_ALGORITHMS, keySpecFromAws, keySpecToAws, rsaAlgorithmFromAws } from "./specs";

const m = kms.KeyManagementService.method;

/** The EncryptionAlgorithm member (default SYMMETRIC_DEFAULT); a symmetric-only operation refuses the others. */
function algorithm(members: Members, name = "EncryptionAlgorithm") {
  return members.enumeration(name, ENCRYPTION_ALGORITHMS) ?? "SYMMETRIC_DEFAULT";
}

function symmetricOnly(members: Members, name: string): void {
  const a = algorithm(members, name);
  if (a !== "SYMMETRIC_DEFAULT") throw unsupported(`${name} ${a} here (symmetric keys only)`);
}

/** Members that ask for AWS features this service does not have. */
function refuseUnsupported(members: Members): void {
  members.refuse("Recipient", "Recipient (Nitro Enclaves attestation)");
}

/**
 * Decrypt and ReEncrypt may name the key they expect (KeyId, SourceKeyId): IncorrectKeyException unless the
 * blob was made under it. Checked before anything is decrypted; a blob that names no known version is left
 * to the handler (InvalidCiphertextException).
 */
async function checkBlobKey(s: Services, ctx: CallContext, blob: Uint8Array, expected: string, field: string, access: Access): Promise<void> {
  const key = await s.lookup.find(ctx, expected, field, access);
  let versionId: string;
  try {
    versionId = parseBlob(blob).keyVersionId;
  } catch {
    return;
  }
  const version = await s.keys.getVersion(versionId);
  if (version && version.keyId !== key.keyId) {
    throw new KmsError(ErrorCode.IncorrectKey, `the ciphertext was not made under ${field} ${expected}`);
  }
}

const encryptSymmetric = awsOperation(m.encrypt, {
  decode: ({ members, arns }) => {
    refuseUnsupported(members);
    symmetricOnly(members, "EncryptionAlgorithm");
    const keyId = arns.keyReference(members.requiredString("KeyId"));
    const encryptionContext = members.stringMap("EncryptionContext");
    return { keyId, encryptionContext, plaintext: members.requiredBlob("Plaintext") }; // the secret last: nothing can fail after it
  },
  encode: (r, { arns }) => ({ CiphertextBlob: base64(r.ciphertextBlob), KeyId: arns.keyArn(r.keyId), EncryptionAlgorithm: "SYMMETRIC_DEFAULT" }),
});

const encryptRsa = awsOperation(m.asymmetricEncrypt, {
  decode: ({ members, arns }) => {
    refuseUnsupported(members);
    const a = rsaAlgorithmFromAws(algorithm(members));
    if (members.has("EncryptionContext")) throw invalidArgument("EncryptionContext", "is not used with RSA encryption");
    const keyId = arns.keyReference(members.requiredString("KeyId"));
    return { keyId, algorithm: a, plaintext: members.requiredBlob("Plaintext") };
  },
  encode: (r, { arns, members }) => ({ CiphertextBlob: base64(r.ciphertextBlob), KeyId: arns.keyArn(r.keyId), EncryptionAlgorithm: algorithm(members) }),
});

const decryptSymmetric = awsOperation(m.decrypt, {
  decode: ({ members }) => {
    refuseUnsupported(members);
    symmetricOnly(members, "EncryptionAlgorithm");
    return { ciphertextBlob: members.requiredBlob("CiphertextBlob"), encryptionContext: members.stringMap("EncryptionContext") };
  },
  around: (handle, { members, arns }) => async (req, ctx, s) => {
    const expected = members.string("KeyId");
    if (expected !== undefined) {
      await checkBlobKey(s, ctx, req.ciphertextBlob, arns.keyReference(expected), "KeyId", { encryptionContext: req.encryptionContext });
    }
    return handle(req, ctx, s);
  },
  encode: (r, { arns }) => ({ KeyId: arns.keyArn(r.keyId), Plaintext: base64(r.plaintext), EncryptionAlgorithm: "SYMMETRIC_DEFAULT" }),
});

const decryptRsa = awsOperation(m.asymmetricDecrypt, {
  decode: ({ members, arns }) => {
    refuseUnsupported(members);
    const a = rsaAlgorithmFromAws(algorithm(members));
    if (!members.has("KeyId")) throw invalidArgument("KeyId", `is required with EncryptionAlgorithm ${algorithm(members)}`);
    return { keyId: arns.keyReference(members.requiredString("KeyId")), algorithm: a, ciphertextBlob: members.requiredBlob("CiphertextBlob") };
  },
  encode: (r, { arns, members }) => ({ KeyId: arns.keyArn(r.keyId), Plaintext: base64(r.plaintext), EncryptionAlgorithm: algorithm(members) }),
});

/** Symmetric unless the request names an RSA algorithm (whose decode then checks it). */
const byAlgorithm = (symmetric: AwsOperation, rsa: AwsOperation) => (members: Members) => {
  let a: string;
  try {
    a = algorithm(members);
  } catch {
    return symmetric; // its decode refuses the value, inside the pipeline
  }
  return a === "SYMMETRIC_DEFAULT" ? symmetric : rsa;
};

const DATA_KEY_SPECS = { AES_256: kmsResources.DataKeySpec.AES_256, AES_128: kmsResources.DataKeySpec.AES_128 } as const;

function dataKeyRequest({ members, arns }: { members: Members; arns: { keyReference(v: string): string } }) {
  refuseUnsupported(members);
  const spec = members.enumeration("KeySpec", ["AES_256", "AES_128"] as const);
  return {
    keyId: arns.keyReference(members.requiredString("KeyId")),
    keySpec: spec === undefined ? kmsResources.DataKeySpec.UNSPECIFIED : DATA_KEY_SPECS[spec],
    numberOfBytes: members.integer("NumberOfBytes", 1, 1024) ?? 0,
    encryptionContext: members.stringMap("EncryptionContext"),
  };
}

/** AWS's DataKeyPairSpec; ECC_NIST_P521 and SM2 answer UnsupportedOperationException (keySpecFromAws). */
const DATA_KEY_PAIR_SPECS = ["RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1", "SM2"] as const;

function dataKeyPairRequest({ members, arns }: { members: Members; arns: { keyReference(v: string): string } }) {
  refuseUnsupported(members);
  const spec = members.enumeration("KeyPairSpec", DATA_KEY_PAIR_SPECS);
  if (spec === undefined) throw invalidArgument("KeyPairSpec", "is required");
  return {
    keyId: arns.keyReference(members.requiredString("KeyId")),
    keyPairSpec: keySpecFromAws(spec, "KeyPairSpec"),
    encryptionContext: members.stringMap("EncryptionContext"),
  };
}

export const CRYPTO_OPERATIONS: Record<string, AwsEntry> = {
  Encrypt: byAlgorithm(encryptSymmetric, encryptRsa),
  Decrypt: byAlgorithm(decryptSymmetric, decryptRsa),

  ReEncrypt: awsOperation(m.reEncrypt, {
    decode: ({ members, arns }) => {
          symmetricOnly(members, "SourceEncryptionAlgorithm");
      symmetricOnly(members, "DestinationEncryptionAlgorithm");
      return {
        ciphertextBlob: members.requiredBlob("CiphertextBlob"),
        sourceEncryptionContext: members.stringMap("SourceEncryptionContext"),
        destinationKeyId: arns.keyReference(members.requiredString("DestinationKeyId"), "DestinationKeyId"),
        destinationEncryptionContext: members.stringMap("DestinationEncryptionContext"),
      };
    },
    around: (handle, { members, arns }) => async (req, ctx, s) => {
      const expected = members.string("SourceKeyId");
      if (expected !== undefined) {
        const access = { action: "kms:ReEncryptFrom", encryptionContext: req.sourceEncryptionContext };
        await checkBlobKey(s, ctx, req.ciphertextBlob, arns.keyReference(expected, "SourceKeyId"), "SourceKeyId", access);
      }
      return handle(req, ctx, s);
    },
    encode: (r, { arns }) => ({
      CiphertextBlob: base64(r.ciphertextBlob),
      SourceKeyId: arns.keyArn(r.sourceKeyId),
      KeyId: arns.keyArn(r.keyId),
      SourceEncryptionAlgorithm: "SYMMETRIC_DEFAULT",
      DestinationEncryptionAlgorithm: "SYMMETRIC_DEFAULT",
    }),
  }),

  GenerateDataKey: awsOperation(m.generateDataKey, {
    decode: dataKeyRequest,
    encode: (r, { arns }) => ({ CiphertextBlob: base64(r.ciphertextBlob), Plaintext: base64(r.plaintext), KeyId: arns.keyArn(r.keyId) }),
  }),
  GenerateDataKeyWithoutPlaintext: awsOperation(m.generateDataKeyWithoutPlaintext, {
    decode: dataKeyRequest,
    encode: (r, { arns }) => ({ CiphertextBlob: base64(r.ciphertextBlob), KeyId: arns.keyArn(r.keyId) }),
  }),

  GenerateDataKeyPair: awsOperation(m.generateDataKeyPair, {
    decode: dataKeyPairRequest,
    encode: (r, { arns }) => ({
      PrivateKeyCiphertextBlob: base64(r.privateKeyCiphertextBlob),
      PrivateKeyPlaintext: base64(r.privateKeyPlaintext),
      PublicKey: base64(r.publicKey),
      KeyId: arns.keyArn(r.keyId),
      KeyPairSpec: keySpecToAws(r.keyPairSpec),
    }),
  }),
  GenerateDataKeyPairWithoutPlaintext: awsOperation(m.generateDataKeyPairWithoutPlaintext, {
    decode: dataKeyPairRequest,
    encode: (r, { arns }) => ({
      PrivateKeyCiphertextBlob: base64(r.privateKeyCiphertextBlob),
      PublicKey: base64(r.publicKey),
      KeyId: arns.keyArn(r.keyId),
      KeyPairSpec: keySpecToAws(r.keyPairSpec),
    }),
  }),

  GenerateRandom: awsOperation(m.generateRandom, {
    decode: ({ members }) => {
      members.refuse("CustomKeyStoreId", "CustomKeyStoreId (custom key stores)");
      members.refuse("Recipient", "Recipient (Nitro Enclaves attestation)");
      return { numberOfBytes: members.integer("NumberOfBytes", 1, 1024) ?? 0 };
    },
    encode: (r) => ({ Plaintext: base64(r.random) }),
  }),
};
