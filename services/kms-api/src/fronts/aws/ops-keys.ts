// Keys and their life: CreateKey, DescribeKey, ListKeys, UpdateKeyDescription, EnableKey, DisableKey,
// ScheduleKeyDeletion, CancelKeyDeletion, and rotation (EnableKeyRotation, DisableKeyRotation,
// GetKeyRotationStatus, RotateKeyOnDemand), each onto its kms.v1 operation.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { kms, kmsResources } from "@kms/proto";

import { unsupported } from "./errors";
import { compact, epochSeconds } from "./json";
import { keyMetadataOf } from "./metadata";
import { awsOperation, empty, keyIdRequest } from "./operation";
import type { AwsEntry } from "./operation";
import { tagsFromAws } from "./ops-names";
import { keySpecFromAws, keySpecToAws, keyUsageFromAws, originFromAws } from "./specs";

const m = kms.KeyManagementService.method;
const DAY_SECONDS = 86_400;

const keyOnly = { decode: keyIdRequest };

export const KEY_OPERATIONS: Record<string, AwsEntry> = {
  CreateKey: awsOperation(m.createKey, {
    decode: ({ members }) => {
      members.refuse("CustomKeyStoreId", "CustomKeyStoreId (custom key stores)");
      members.refuse("XksKeyId", "XksKeyId (external key stores)");
      members.refuse("MultiRegion", "MultiRegion keys");
      const spec = members.string("KeySpec") ?? members.string("CustomerMasterKeySpec");
      const usage = members.string("KeyUsage");
      const origin = members.string("Origin");
      // BypassPolicyLockoutSafetyCheck is not honoured: the lockout check always applies (docs/aws-compatibility.md).
      return {
        description: members.string("Description") ?? "",
        keySpec: spec === undefined ? kmsResources.KeySpec.UNSPECIFIED : keySpecFromAws(spec),
        keyUsage: usage === undefined ? kmsResources.KeyUsage.UNSPECIFIED : keyUsageFromAws(usage),
        origin: origin === undefined ? kmsResources.Origin.UNSPECIFIED : originFromAws(origin),
        tags: tagsFromAws(members),
        policy: members.string("Policy") ?? "",
      };
    },
    encode: (r, { arns }) => ({ KeyMetadata: keyMetadataOf(r, arns) }),
  }),

  DescribeKey: awsOperation(m.describeKey, { ...keyOnly, encode: (r, { arns }) => ({ KeyMetadata: keyMetadataOf(r, arns) }) }),

  ListKeys: awsOperation(m.listKeys, {
    decode: ({ members }) => ({ pageSize: members.integer("Limit", 1, 1000) ?? 0, pageToken: members.string("Marker") ?? "" }),
    encode: (r, { arns }) =>
      compact({
        Keys: r.keys.map((k) => ({ KeyId: k.keyId, KeyArn: arns.keyArn(k.keyId) })),
        NextMarker: r.nextPageToken === "" ? undefined : r.nextPageToken,
        Truncated: r.nextPageToken !== "",
      }),
  }),

  UpdateKeyDescription: awsOperation(m.updateKeyDescription, {
    decode: ({ members, arns }) => ({ ...keyIdRequest({ members, arns }), description: members.string("Description") ?? "" }),
    encode: empty,
  }),
  EnableKey: awsOperation(m.enableKey, { ...keyOnly, encode: empty }),
  DisableKey: awsOperation(m.disableKey, { ...keyOnly, encode: empty }),

  ScheduleKeyDeletion: awsOperation(m.scheduleKeyDeletion, {
    decode: ({ members, arns }) => ({
      ...keyIdRequest({ members, arns }),
      pendingWindowInDays: members.integer("PendingWindowInDays", 1, 366) ?? 0,
    }),
    encode: (r, { arns, members }) => {
      const k = r.keyMetadata!;
      return compact({
        KeyId: arns.keyArn(k.keyId),
        DeletionDate: k.deleteTime ? epochSeconds(timestampDate(k.deleteTime)) : undefined,
        KeyState: "PendingDeletion",
        PendingWindowInDays: members.integer("PendingWindowInDays", 1, 366) ?? 30,
      });
    },
  }),
  CancelKeyDeletion: awsOperation(m.cancelKeyDeletion, { ...keyOnly, encode: (r, { arns }) => ({ KeyId: arns.keyArn(r.keyMetadata!.keyId) }) }),

  // Rotation is UpdateRotationPolicy (action kms:UpdateRotationPolicy); AWS's period is in days.
  EnableKeyRotation: awsOperation(m.updateRotationPolicy, {
    decode: ({ members, arns }) => {
      const days = members.integer("RotationPeriodInDays", 1, 2560);
      return {
        ...keyIdRequest({ members, arns }),
        enableAutomaticRotation: true,
        rotationInterval: days === undefined ? undefined : { seconds: BigInt(days * DAY_SECONDS), nanos: 0 },
      };
    },
    encode: empty,
  }),
  DisableKeyRotation: awsOperation(m.updateRotationPolicy, {
    decode: ({ members, arns }) => ({ ...keyIdRequest({ members, arns }), enableAutomaticRotation: false }),
    encode: empty,
  }),
  // A read of the key's metadata (action kms:DescribeKey).
  GetKeyRotationStatus: awsOperation(m.describeKey, {
    ...keyOnly,
    encode: (r, { arns }) => {
      const k = r.keyMetadata!;
      return compact({
        KeyRotationEnabled: k.automaticRotation,
        KeyId: arns.keyArn(k.keyId),
        RotationPeriodInDays: k.automaticRotation && k.rotationInterval ? Number(k.rotationInterval.seconds) / DAY_SECONDS : undefined,
        NextRotationDate: k.nextRotationTime ? epochSeconds(timestampDate(k.nextRotationTime)) : undefined,
      });
    },
  }),
  // A new primary version (action kms:CreateKeyVersion). AWS rotates only symmetric keys on demand: an
  // asymmetric key's public key would change under its callers.
  RotateKeyOnDemand: awsOperation(m.createKeyVersion, {
    ...keyOnly,
    around: (handle) => async (req, ctx, s) => {
      const key = await s.lookup.find(ctx, req.keyId);
      if (key.keySpec !== kmsResources.KeySpec.AES_256 && key.keySpec !== kmsResources.KeySpec.AES_128) {
        throw unsupported(`RotateKeyOnDemand of a ${keySpecToAws(key.keySpec)} key`);
      }
      return handle(req, ctx, s);
    },
    encode: (r, { arns }) => ({ KeyId: arns.keyArn(r.keyVersion!.keyId) }),
  }),
};
