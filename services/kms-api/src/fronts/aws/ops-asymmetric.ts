// Sign, Verify, GetPublicKey, GenerateMac, VerifyMac. AWS answers a signature or MAC that does not match
// with an exception (KMSInvalidSignatureException, KMSInvalidMacException), not a false: the translation
// back throws it, inside the pipeline, so the audit row records it.
import { createPublicKey } from "node:crypto";
import { ErrorCode, KmsError } from "@kms/errors";
import { kms, kmsResources } from "@kms/proto";
import type { CallContext, Services } from "../../context";
import { base64, compact } from "./json";
import type { Members } from "./json";
import { awsOperation, keyIdRequest } from "./operation";
import type { AwsCall, AwsEntry } from "./operation";
import {
  MAC_ALGORITHMS,
  encryptionAlgorithmsOf,
  keyAgreementAlgorithmsOf,
  keySpecToAws,
  keyUsageToAws,
  macAlgorithmsOf,
  signingAlgorithmFromAws,
  signingAlgorithmsOf,
} from "./specs";

const m = kms.KeyManagementService.method;

/** AWS's MessageType → the kms.v1 input oneof (EXTERNAL_MU: ML_DSA_SHAKE_256 only, which kms.v1 checks). */
const INPUT_OF_MESSAGE_TYPE = { RAW: "message", DIGEST: "digest", EXTERNAL_MU: "externalMu" } as const;

/** The members Sign and Verify share: the key, the algorithm and the message, digest or μ. */
function signRequest({ members, arns }: AwsCall) {
  const messageType = members.enumeration("MessageType", ["RAW", "DIGEST", "EXTERNAL_MU"] as const) ?? "RAW";
  return {
    ...keyIdRequest({ members, arns }),
    algorithm: signingAlgorithmFromAws(members.requiredString("SigningAlgorithm")),
    input: { case: INPUT_OF_MESSAGE_TYPE[messageType], value: members.requiredBlob("Message") },
  };
}

const macAlgorithm = (members: Members) => members.enumeration("MacAlgorithm", MAC_ALGORITHMS);

/** The MacAlgorithm must be the key's: AWS answers InvalidKeyUsageException for another. */
async function checkMacAlgorithm(members: Members, s: Services, ctx: CallContext, keyId: string): Promise<void> {
  const wanted = macAlgorithm(members);
  if (wanted === undefined) throw new KmsError(ErrorCode.InvalidParameter, "MacAlgorithm: is required");
  const key = await s.lookup.find(ctx, keyId);
  const own = macAlgorithmsOf(key.keySpec);
  if (own.length > 0 && !own.includes(wanted)) {
    throw new KmsError(ErrorCode.KeyUsage, `key ${key.keyId} is ${keySpecToAws(key.keySpec)}: its MacAlgorithm is ${own.join(", ")}`);
  }
}

/** PEM SubjectPublicKeyInfo → the DER AWS sends. */
const der = (pem: string) => createPublicKey(pem).export({ type: "spki", format: "der" });

export const ASYMMETRIC_OPERATIONS: Record<string, AwsEntry> = {
  Sign: awsOperation(m.asymmetricSign, {
    decode: signRequest,
    encode: (r, { arns, members }) => ({ KeyId: arns.keyArn(r.keyId), Signature: base64(r.value), SigningAlgorithm: members.requiredString("SigningAlgorithm") }),
  }),
  Verify: awsOperation(m.asymmetricVerify, {
    decode: (call) => ({ ...signRequest(call), value: call.members.requiredBlob("Signature") }),
    encode: (r, { arns, members }) => {
      if (!r.value) throw new KmsError(ErrorCode.InvalidSignature, "the signature is not valid");
      return { KeyId: arns.keyArn(r.keyId), SignatureValid: true, SigningAlgorithm: members.requiredString("SigningAlgorithm") };
    },
  }),

  GetPublicKey: awsOperation(m.getPublicKey, {
    decode: keyIdRequest,
    encode: (r, { arns }) => {
      const spec = r.keySpec;
      const usage = r.keyUsage;
      const signing = usage === kmsResources.KeyUsage.SIGN_VERIFY;
      return compact({
        KeyId: arns.keyArn(r.keyId),
        PublicKey: base64(der(r.publicKey)),
        CustomerMasterKeySpec: keySpecToAws(spec),
        KeySpec: keySpecToAws(spec),
        KeyUsage: keyUsageToAws(usage),
        SigningAlgorithms: signing ? signingAlgorithmsOf(spec) : undefined,
        EncryptionAlgorithms: signing || usage === kmsResources.KeyUsage.KEY_AGREEMENT ? undefined : encryptionAlgorithmsOf(spec, usage),
        KeyAgreementAlgorithms: usage === kmsResources.KeyUsage.KEY_AGREEMENT ? keyAgreementAlgorithmsOf(usage) : undefined,
      });
    },
  }),

  GenerateMac: awsOperation(m.generateMac, {
    decode: ({ members, arns }) => {
          return { ...keyIdRequest({ members, arns }), message: members.requiredBlob("Message") };
    },
    around: (handle, { members }) => async (req, ctx, s) => {
      await checkMacAlgorithm(members, s, ctx, req.keyId);
      return handle(req, ctx, s);
    },
    encode: (r, { arns, members }) => ({ Mac: base64(r.mac), MacAlgorithm: macAlgorithm(members)!, KeyId: arns.keyArn(r.keyId) }),
  }),
  VerifyMac: awsOperation(m.verifyMac, {
    decode: ({ members, arns }) => {
          return { ...keyIdRequest({ members, arns }), message: members.requiredBlob("Message"), mac: members.requiredBlob("Mac") };
    },
    around: (handle, { members }) => async (req, ctx, s) => {
      await checkMacAlgorithm(members, s, ctx, req.keyId);
      return handle(req, ctx, s);
    },
    encode: (r, { arns, members }) => {
      if (!r.macValid) throw new KmsError(ErrorCode.InvalidMac, "the MAC is not valid");
      return { KeyId: arns.keyArn(r.keyId), MacValid: true, MacAlgorithm: macAlgorithm(members)! };
    },
  }),
};
