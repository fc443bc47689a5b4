// CreateAlias, UpdateAlias, DeleteAlias, ListAliases, ListAliasesByKeyId.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import { ErrorCode, KmsError } from "@kms/errors";
import { pageSize, validateAliasName } from "@kms/key-rules";
import type { AliasRecord } from "@kms/db";
import type { kms } from "@kms/proto";
import { auditedTransaction } from "../audited-change";
import { authorizeCreator, authorizeKey } from "../auth/authorize";
import type { Services } from "../context";
import { findKey } from "../keys";
import type { Handler } from "../rpc";

const toAlias = (a: AliasRecord) => ({
  aliasName: a.aliasName,
  keyId: a.keyId,
  creationTime: timestampFromDate(a.creationTime),
  updateTime: timestampFromDate(a.updateTime),
});

const aliasNotFound = (name: string) => new KmsError(status.NOT_FOUND, ErrorCode.AliasNotFound, `alias ${JSON.stringify(name)} not found`);

/** The alias must name a key directly: an alias pointing at an alias would make resolution ambiguous. */
async function targetKey(s: Services, ctx: Parameters<Handler<never, never>>[1], keyId: string) {
  if (keyId.startsWith("alias/")) {
    throw new KmsError(status.INVALID_ARGUMENT, ErrorCode.InvalidParameter, "key_id: must be a key UUID, not an alias");
  }
  return findKey(s, ctx, keyId);
}

export const createAlias: Handler<typeof kms.CreateAliasRequestSchema, typeof kms.CreateAliasResponseSchema> = async (req, ctx, s) => {
  validateAliasName(req.aliasName);
  const key = await targetKey(s, ctx, req.keyId);
  const now = s.clock();
  const created = await auditedTransaction(s, ctx, (tx) =>
    s.aliases.create(tx, { aliasName: req.aliasName, keyId: key.keyId, creationTime: now, updateTime: now }),
  );
  if (!created) throw new KmsError(status.ALREADY_EXISTS, ErrorCode.AliasExists, `alias ${JSON.stringify(req.aliasName)} already exists`);
  return { alias: toAlias(created) };
};

export const updateAlias: Handler<typeof kms.UpdateAliasRequestSchema, typeof kms.UpdateAliasResponseSchema> = async (req, ctx, s) => {
  validateAliasName(req.aliasName);
  const key = await targetKey(s, ctx, req.keyId);
  // Moving an alias needs the permission on the key it leaves too.
  const current = await s.aliases.get(req.aliasName);
  const previous = current ? await s.store.getKey(current.keyId) : undefined;
  if (previous) authorizeKey(s, ctx, previous);
  const updated = await auditedTransaction(s, ctx, (tx) => s.aliases.update(tx, req.aliasName, key.keyId, s.clock()));
  if (!updated) throw aliasNotFound(req.aliasName);
  s.keys.invalidateAlias(req.aliasName);
  return { alias: toAlias(updated) };
};

export const deleteAlias: Handler<typeof kms.DeleteAliasRequestSchema, typeof kms.DeleteAliasResponseSchema> = async (req, ctx, s) => {
  validateAliasName(req.aliasName);
  const alias = await s.aliases.get(req.aliasName);
  if (alias) ctx.audit.keyId = alias.keyId;
  const key = alias ? await s.store.getKey(alias.keyId) : undefined;
  if (key) authorizeKey(s, ctx, key);
  const deleted = await auditedTransaction(s, ctx, (tx) => s.aliases.delete(tx, req.aliasName));
  if (!deleted) throw aliasNotFound(req.aliasName);
  s.keys.invalidateAlias(req.aliasName);
  return {};
};

async function listPage(s: Services, scope: string, requestedSize: number, token: string, keyId?: string) {
  const limit = pageSize(requestedSize);
  const cursor = s.pageTokens.decode(scope, token);
  const rows = await s.aliases.list(limit + 1, cursor?.[0], keyId);
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    aliases: page.map(toAlias),
    nextPageToken: rows.length > limit && last ? s.pageTokens.encode(scope, [last.aliasName]) : "",
  };
}

export const listAliases: Handler<typeof kms.ListAliasesRequestSchema, typeof kms.ListAliasesResponseSchema> = async (req, ctx, s) => {
  authorizeCreator(s, ctx);
  return listPage(s, "ListAliases", req.pageSize, req.pageToken);
};

export const listAliasesByKeyId: Handler<typeof kms.ListAliasesByKeyIdRequestSchema, typeof kms.ListAliasesByKeyIdResponseSchema> = async (
  req,
  ctx,
  s,
) => {
  const key = await findKey(s, ctx, req.keyId);
  return listPage(s, `ListAliasesByKeyId:${key.keyId}`, req.pageSize, req.pageToken, key.keyId);
};
