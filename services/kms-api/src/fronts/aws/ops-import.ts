// Key import: GetParametersForImport, ImportKeyMaterial, DeleteImportedKeyMaterial. AWS's import token is a
// blob; this service's is a string, sent as its UTF-8 bytes. AWS sends public keys as DER, not PEM.
import { createPublicKey } from "node:crypto";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { invalidArgument } from "@kms/errors";
import { kms } from "@kms/proto";
import { unsupported } from "./errors";
import { base64, compact, epochSeconds } from "./json";
import { awsOperation, keyIdRequest } from "./operation";
import type { AwsEntry } from "./operation";
import { wrappingAlgorithmFromAws, wrappingKeySpecFromAws } from "./specs";

const m = kms.KeyManagementService.method;

export const IMPORT_OPERATIONS: Record<string, AwsEntry> = {
  GetParametersForImport: awsOperation(m.getParametersForImport, {
    decode: ({ members, arns }) => ({
      ...keyIdRequest({ members, arns }),
      wrappingAlgorithm: wrappingAlgorithmFromAws(members.requiredString("WrappingAlgorithm")),
      wrappingKeySpec: wrappingKeySpecFromAws(members.requiredString("WrappingKeySpec")),
    }),
    encode: (r, { arns }) =>
      compact({
        KeyId: arns.keyArn(r.keyId),
        ImportToken: base64(Buffer.from(r.importToken, "utf8")),
        PublicKey: base64(createPublicKey(r.publicKey).export({ type: "spki", format: "der" })),
        ParametersValidTo: r.tokenExpireTime ? epochSeconds(timestampDate(r.tokenExpireTime)) : undefined,
      }),
  }),

  ImportKeyMaterial: awsOperation(m.importKeyMaterial, {
    decode: ({ members, arns }) => {
      const importType = members.enumeration("ImportType", ["EXISTING_KEY_MATERIAL", "NEW_KEY_MATERIAL"] as const);
      if (importType === "NEW_KEY_MATERIAL") throw unsupported("ImportType NEW_KEY_MATERIAL (a key has one material)");
      members.refuse("KeyMaterialId");
      const validTo = members.date("ValidTo");
      const model = members.enumeration("ExpirationModel", ["KEY_MATERIAL_EXPIRES", "KEY_MATERIAL_DOES_NOT_EXPIRE"] as const);
      if (model === "KEY_MATERIAL_EXPIRES" && validTo === undefined) throw invalidArgument("ValidTo", "is required with KEY_MATERIAL_EXPIRES");
      if (model === "KEY_MATERIAL_DOES_NOT_EXPIRE" && validTo !== undefined) throw invalidArgument("ValidTo", "is not allowed with KEY_MATERIAL_DOES_NOT_EXPIRE");
      return {
        ...keyIdRequest({ members, arns }),
        importToken: members.requiredBlob("ImportToken").toString("utf8"),
        encryptedKeyMaterial: members.requiredBlob("EncryptedKeyMaterial"),
        keyMaterialExpireTime: validTo === undefined ? undefined : timestampFromDate(validTo),
      };
    },
    encode: (r, { arns }) => ({ KeyId: arns.keyArn(r.keyMetadata!.keyId) }),
  }),

  DeleteImportedKeyMaterial: awsOperation(m.deleteKeyMaterial, {
    decode: ({ members, arns }) => {
      members.refuse("KeyMaterialId");
      return keyIdRequest({ members, arns });
    },
    encode: (r, { arns }) => ({ KeyId: arns.keyArn(r.keyMetadata!.keyId) }),
  }),
};
