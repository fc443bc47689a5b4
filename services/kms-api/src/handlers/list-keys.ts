import { invalidArgument } from "@kms/errors";
import { pageSize, requireKnownEnum } from "@kms/key-rules";
import { kmsResources } from "@kms/proto";
import type { kms } from "@kms/proto";
import { authorizeCreator } from "../auth/authorize";
import { toKeyMetadata } from "../keys";
import type { Handler } from "../rpc";

export const listKeys: Handler<typeof kms.ListKeysRequestSchema, typeof kms.ListKeysResponseSchema> = async (req, ctx, s) => {
  authorizeCreator(s, ctx);
  const limit = pageSize(req.pageSize);
  const filter = {
    keyStates: [...(req.filter?.keyStates ?? [])].sort(),
    keySpecs: [...(req.filter?.keySpecs ?? [])].sort(),
    tags: Object.fromEntries(Object.entries(req.filter?.tags ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
  };
  for (const state of filter.keyStates) requireKnownEnum(kmsResources.KeyStateSchema, state, "filter.key_states");
  for (const spec of filter.keySpecs) requireKnownEnum(kmsResources.KeySpecSchema, spec, "filter.key_specs");
  // The token is bound to the filter: a token from another filter would skip or repeat keys.
  const scope = `ListKeys:${JSON.stringify(filter)}`;
  const cursor = s.pageTokens.decode(scope, req.pageToken);
  let after;
  if (cursor) {
    const [time, keyId] = cursor;
    const creationTime = new Date(time ?? "");
    if (keyId === undefined || Number.isNaN(creationTime.getTime())) throw invalidArgument("page_token", "is malformed");
    after = { creationTime, keyId };
  }
  const rows = await s.store.listKeys(limit + 1, after, filter);
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    keys: page.map(toKeyMetadata),
    nextPageToken: rows.length > limit && last ? s.pageTokens.encode(scope, [last.creationTime.toISOString(), last.keyId]) : "",
  };
};
