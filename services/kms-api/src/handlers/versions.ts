// CreateKeyVersion, DescribeKeyVersion, ListKeyVersions, UpdateRotationPolicy.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ErrorCode, KmsError, invalidArgument } from "@kms/errors";
import { checkCanAddVersion, isUuid, pageSize, rotationPolicy } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import { changeKey, changeLockedKey, currentKey, generateVersion, rotationPatch } from "../key-changes";
import { toKeyMetadata } from "../keys";
import type { Handler } from "../pipeline/operation";

const toKeyVersion = (v: { keyId: string; keyVersionId: string; creationTime: Date }) => ({
  keyId: v.keyId,
  keyVersionId: v.keyVersionId,
  creationTime: timestampFromDate(v.creationTime),
});

export const createKeyVersion: Handler<typeof kms.CreateKeyVersionRequestSchema, typeof kms.CreateKeyVersionResponseSchema> = async (
  req,
  ctx,
  s,
) => {
  // Checked on the committed row, then the material is made with no lock held, then checked again under
  // the row lock: a key disabled meanwhile gets no version. Concurrent CreateKeyVersion calls each add one.
  const key = await currentKey(s, ctx, (await s.lookup.find(ctx, req.keyId)).keyId);
  checkCanAddVersion(key);
  const version = await generateVersion(s, key, ctx.deadline);
  await changeLockedKey(s, ctx, key.keyId, (locked) => {
    checkCanAddVersion(locked.record);
    ctx.audit.keyVersionId = version.keyVersionId; // before the row, which commits with the version
    return locked.addPrimaryVersion(version, rotationPatch(locked.record, version));
  });
  return { keyVersion: toKeyVersion(version) };
};

export const describeKeyVersion: Handler<typeof kms.DescribeKeyVersionRequestSchema, typeof kms.DescribeKeyVersionResponseSchema> = async (
  req,
  ctx,
  s,
) => {
  const key = await s.lookup.find(ctx, req.keyId);
  const id = req.keyVersionId.toLowerCase();
  if (!isUuid(id)) throw invalidArgument("key_version_id", "must be a UUID");
  ctx.audit.keyVersionId = id;
  const version = await s.store.getVersion(id);
  if (!version || version.keyId !== key.keyId) {
    throw new KmsError(ErrorCode.KeyVersionNotFound, `key version ${id} of key ${key.keyId} not found`);
  }
  return { keyVersion: toKeyVersion(version) };
};

export const listKeyVersions: Handler<typeof kms.ListKeyVersionsRequestSchema, typeof kms.ListKeyVersionsResponseSchema> = async (
  req,
  ctx,
  s,
) => {
  const limit = pageSize(req.pageSize);
  const key = await s.lookup.find(ctx, req.keyId);
  const scope = `ListKeyVersions:${key.keyId}`;
  const cursor = s.pageTokens.decode(scope, req.pageToken);
  const after = cursor ? { creationTime: new Date(cursor[0] ?? ""), keyVersionId: cursor[1] ?? "" } : undefined;
  const rows = await s.store.listVersions(key.keyId, limit + 1, after);
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    keyVersions: page.map(toKeyVersion),
    nextPageToken: rows.length > limit && last ? s.pageTokens.encode(scope, [last.creationTime.toISOString(), last.keyVersionId]) : "",
  };
};

export const updateRotationPolicy: Handler<typeof kms.UpdateRotationPolicyRequestSchema, typeof kms.UpdateRotationPolicyResponseSchema> = async (
  req,
  ctx,
  s,
) => {
  const key = await changeKey(s, ctx, req.keyId, (k) => rotationPolicy(k, req.enableAutomaticRotation, req.rotationInterval, s.clock()));
  return { keyMetadata: toKeyMetadata(key) };
};
