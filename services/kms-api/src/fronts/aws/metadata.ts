// kms.v1 KeyMetadata as AWS's KeyMetadata shape.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { kmsResources } from "@kms/proto";
import type { Arns } from "./arns";
import { compact, epochSeconds } from "./json";
import type { JsonObject } from "./json";
import { encryptionAlgorithmsOf, keyAgreementAlgorithmsOf, keySpecToAws, keyStateToAws, keyUsageToAws, macAlgorithmsOf, originToAws, signingAlgorithmsOf } from "./specs";

const seconds = (t: Timestamp | undefined) => (t === undefined ? undefined : epochSeconds(timestampDate(t)));
const nonEmpty = (list: string[]) => (list.length > 0 ? list : undefined);

export function keyMetadataToAws(k: kmsResources.KeyMetadata, arns: Arns): JsonObject {
  const external = k.origin === kmsResources.Origin.EXTERNAL;
  const spec = keySpecToAws(k.keySpec);
  return compact({
    AWSAccountId: arns.accountId,
    KeyId: k.keyId,
    Arn: arns.keyArn(k.keyId),
    CreationDate: seconds(k.creationTime),
    Enabled: k.keyState === kmsResources.KeyState.ENABLED,
    Description: k.description,
    KeyUsage: keyUsageToAws(k.keyUsage),
    KeyState: keyStateToAws(k.keyState),
    DeletionDate: seconds(k.deleteTime),
    ValidTo: seconds(k.materialExpireTime),
    Origin: originToAws(k.origin),
    // Imported material: whether it expires, once there is any.
    ExpirationModel:
      external && k.keyState !== kmsResources.KeyState.PENDING_IMPORT
        ? k.materialExpireTime
          ? "KEY_MATERIAL_EXPIRES"
          : "KEY_MATERIAL_DOES_NOT_EXPIRE"
        : undefined,
    KeyManager: "CUSTOMER",
    CustomerMasterKeySpec: spec,
    KeySpec: spec,
    EncryptionAlgorithms: nonEmpty(encryptionAlgorithmsOf(k.keySpec, k.keyUsage)),
    // Only a signing key has any: an RSA or EC key for encryption or key agreement signs nothing.
    SigningAlgorithms: k.keyUsage === kmsResources.KeyUsage.SIGN_VERIFY ? nonEmpty(signingAlgorithmsOf(k.keySpec)) : undefined,
    KeyAgreementAlgorithms: nonEmpty(keyAgreementAlgorithmsOf(k.keyUsage)),
    MacAlgorithms: nonEmpty(macAlgorithmsOf(k.keySpec)),
    MultiRegion: false,
  });
}

/** The KeyMetadata member of a kms.v1 response, as AWS shows it. */
export function keyMetadataOf(response: { keyMetadata?: kmsResources.KeyMetadata | undefined }, arns: Arns): JsonObject {
  return keyMetadataToAws(response.keyMetadata ?? ({} as kmsResources.KeyMetadata), arns);
}
