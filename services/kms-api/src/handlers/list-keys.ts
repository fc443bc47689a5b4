import { invalidArgument } from "@kms/errors";
import { pageSize, requireKnownEnum, validateTags } from "@kms/key-rules";
import { kmsResources } from "@kms/proto";
import type { kms } from "@kms/proto";
import { mayDescribe } from "../auth/visibility";
import { toKeyMetadata } from "../keys";
import type { Handler } from "../pipeline/operation";

const sortedUnique = (values: readonly number[]) => [...new Set(values)].sort((a, b) => a - b);

/**
 * Keys the caller may describe (KMS_ADMINS: all), in creation order. A page is one scan of page_size
 * keys, so it may hold fewer (even none) and still have a next_page_token.
 */
export const listKeys: Handler<typeof kms.ListKeysRequestSchema, typeof kms.ListKeysResponseSchema> = async (req, ctx, s) => {
  s.authorizer.creator(ctx);
  const limit = pageSize(req.pageSize);
  const requested = req.filter;
  // A filter is bounded like the tags it matches: at most 20 (one EXISTS each), the same lengths.
  validateTags(requested?.tags ?? {}, "filter.tags");
  for (const state of requested?.keyStates ?? []) requireKnownEnum(kmsResources.KeyStateSchema, state, "filter.key_states");
  for (const spec of requested?.keySpecs ?? []) requireKnownEnum(kmsResources.KeySpecSchema, spec, "filter.key_specs");
  const filter = {
    // Known values only, each once: as many as the enums have.
    keyStates: sortedUnique(requested?.keyStates ?? []),
    keySpecs: sortedUnique(requested?.keySpecs ?? []),
    tags: Object.fromEntries(Object.entries(requested?.tags ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
  };
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
    keys: page.filter((key) => mayDescribe(s, ctx, key)).map(toKeyMetadata),
    nextPageToken: rows.length > limit && last ? s.pageTokens.encode(scope, [last.creationTime.toISOString(), last.keyId]) : "",
  };
};
