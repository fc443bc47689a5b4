// DeriveSharedSecret (AWS semantics): KeyId, KeyAgreementAlgorithm ECDH, PublicKey (the peer's DER SPKI)
// → SharedSecret, KeyId, KeyAgreementAlgorithm, KeyOrigin; DryRun and GrantTokens as on every operation that
// has them. Recipient (Nitro Enclaves) is refused.
import { kms, kmsResources } from "@kms/proto";
import { base64 } from "./json";
import { awsOperation, keyIdRequest } from "./operation";
import type { AwsEntry } from "./operation";
import { originToAws } from "./specs";

const m = kms.KeyManagementService.method;

export const KEY_AGREEMENT_OPERATIONS: Record<string, AwsEntry> = {
  DeriveSharedSecret: awsOperation(m.deriveSharedSecret, {
    decode: ({ members, arns }) => {
      members.refuse("Recipient", "Recipient (Nitro Enclaves attestation)");
      const algorithm = members.enumeration("KeyAgreementAlgorithm", ["ECDH"] as const);
      return {
        ...keyIdRequest({ members, arns }),
        keyAgreementAlgorithm: algorithm === "ECDH" ? kmsResources.KeyAgreementAlgorithm.ECDH : kmsResources.KeyAgreementAlgorithm.UNSPECIFIED,
        publicKey: members.requiredBlob("PublicKey"),
      };
    },
    encode: (r, { arns }) => ({
      KeyId: arns.keyArn(r.keyId),
      SharedSecret: base64(r.sharedSecret),
      KeyAgreementAlgorithm: "ECDH",
      KeyOrigin: originToAws(r.keyOrigin),
    }),
  }),
};
