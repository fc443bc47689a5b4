// Aliases, tags and key policies: CreateAlias, UpdateAlias, DeleteAlias, ListAliases, TagResource,
// UntagResource, ListResourceTags, GetKeyPolicy, PutKeyPolicy, ListKeyPolicies.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { invalidArgument } from "@kms/errors";
import { kms } from "@kms/proto";
import type { kmsResources } from "@kms/proto";
import type { Arns } from "./arns";
import { compact, epochSeconds } from "./json";
import type { Members } from "./json";
import { awsOperation, empty, keyIdRequest } from "./operation";
import type { AwsEntry } from "./operation";

const m = kms.KeyManagementService.method;

/** AWS's Tags list ([{TagKey, TagValue}]) as the kms.v1 map. */
export function tagsFromAws(members: Members): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const tag of members.objects("Tags")) {
    const value = tag.string("TagValue");
    if (value === undefined) throw invalidArgument("Tags", "every tag needs a TagValue");
    tags[tag.requiredString("TagKey")] = value;
  }
  return tags;
}

const toAwsAlias = (a: kmsResources.Alias, arns: Arns) =>
  compact({
    AliasName: a.aliasName,
    AliasArn: arns.aliasArn(a.aliasName),
    TargetKeyId: a.keyId,
    CreationDate: a.creationTime ? epochSeconds(timestampDate(a.creationTime)) : undefined,
    LastUpdatedDate: a.updateTime ? epochSeconds(timestampDate(a.updateTime)) : undefined,
  });

const aliasPage = (r: { aliases: kmsResources.Alias[]; nextPageToken: string }, arns: Arns) =>
  compact({
    Aliases: r.aliases.map((a) => toAwsAlias(a, arns)),
    NextMarker: r.nextPageToken === "" ? undefined : r.nextPageToken,
    Truncated: r.nextPageToken !== "",
  });

const page = (members: Members) => ({ pageSize: members.integer("Limit", 1, 1000) ?? 0, pageToken: members.string("Marker") ?? "" });

const aliasTarget = ({ members, arns }: { members: Members; arns: Arns }) => ({
  aliasName: members.requiredString("AliasName"),
  keyId: arns.keyReference(members.requiredString("TargetKeyId"), "TargetKeyId"),
});

const listAliases = awsOperation(m.listAliases, { decode: ({ members }) => page(members), encode: (r, { arns }) => aliasPage(r, arns) });
const listAliasesOfKey = awsOperation(m.listAliasesByKeyId, {
  decode: ({ members, arns }) => ({ ...keyIdRequest({ members, arns }), ...page(members) }),
  encode: (r, { arns }) => aliasPage(r, arns),
});

/** ListResourceTags pages through the key's (at most 20) tags by offset. */
function tagPage(tags: Record<string, string>, members: Members) {
  const limit = members.integer("Limit", 1, 50) ?? 50;
  const marker = members.string("Marker");
  if (marker !== undefined && !/^\d{1,4}$/.test(marker)) throw invalidArgument("Marker", "is not one this service gave");
  const start = marker === undefined ? 0 : Number(marker);
  const all = Object.entries(tags).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const next = start + limit < all.length ? String(start + limit) : undefined;
  return compact({
    Tags: all.slice(start, start + limit).map(([TagKey, TagValue]) => ({ TagKey, TagValue })),
    NextMarker: next,
    Truncated: next !== undefined,
  });
}

export const NAME_OPERATIONS: Record<string, AwsEntry> = {
  CreateAlias: awsOperation(m.createAlias, { decode: aliasTarget, encode: empty }),
  UpdateAlias: awsOperation(m.updateAlias, { decode: aliasTarget, encode: empty }),
  DeleteAlias: awsOperation(m.deleteAlias, { decode: ({ members }) => ({ aliasName: members.requiredString("AliasName") }), encode: empty }),
  // With KeyId: that key's aliases (action kms:ListAliasesByKeyId); without: all the caller may see.
  ListAliases: (members) => (members.has("KeyId") ? listAliasesOfKey : listAliases),

  TagResource: awsOperation(m.tagResource, {
    decode: ({ members, arns }) => ({ ...keyIdRequest({ members, arns }), tags: tagsFromAws(members) }),
    encode: empty,
  }),
  UntagResource: awsOperation(m.untagResource, {
    decode: ({ members, arns }) => ({ ...keyIdRequest({ members, arns }), tagKeys: members.strings("TagKeys") }),
    encode: empty,
  }),
  ListResourceTags: awsOperation(m.listResourceTags, { decode: keyIdRequest, encode: (r, { members }) => tagPage(r.tags, members) }),

  GetKeyPolicy: awsOperation(m.getKeyPolicy, {
    decode: ({ members, arns }) => ({ ...keyIdRequest({ members, arns }), policyName: members.string("PolicyName") ?? "" }),
    encode: (r) => ({ Policy: r.policy, PolicyName: "default" }),
  }),
  // BypassPolicyLockoutSafetyCheck is not honoured: the lockout check always applies.
  PutKeyPolicy: awsOperation(m.setKeyPolicy, {
    decode: ({ members, arns }) => ({
      ...keyIdRequest({ members, arns }),
      policyName: members.string("PolicyName") ?? "",
      policy: members.requiredString("Policy"),
    }),
    encode: empty,
  }),
  // Every key has one policy, "default": a read of the key (action kms:DescribeKey) says it exists for the caller.
  ListKeyPolicies: awsOperation(m.describeKey, { decode: keyIdRequest, encode: () => ({ PolicyNames: ["default"], Truncated: false }) }),
};
