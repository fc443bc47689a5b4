// TagResource, UntagResource, ListResourceTags. At most 20 tags a key.
import { ErrorCode, KmsError, invalidArgument } from "@kms/errors";
import { MAX_TAGS, validateTags } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import type { CallContext, Services } from "../context";
import { changeLockedKey } from "../key-changes";

import type { Handler } from "../pipeline/operation";

async function changeTags(s: Services, ctx: CallContext, keyIdField: string, set: Record<string, string>, remove: string[]) {
  const tags = await changeLockedKey(s, ctx, keyIdField, async (key) => {
    const after = { ...key.record.tags, ...set };
    for (const k of remove) delete after[k];
    if (Object.keys(after).length > MAX_TAGS) {
      throw new KmsError(
        ErrorCode.TooManyTags,
        `key ${key.record.keyId} would have ${Object.keys(after).length} tags; at most ${MAX_TAGS}`,
      );
    }
    return key.changeTags(set, remove);
  });
  return { tags };
}

export const tagResource: Handler<typeof kms.TagResourceRequestSchema, typeof kms.TagResourceResponseSchema> = async (req, ctx, s) => {
  validateTags(req.tags);
  if (Object.keys(req.tags).length === 0) throw invalidArgument("tags", "must not be empty");
  return changeTags(s, ctx, req.keyId, { ...req.tags }, []);
};

export const untagResource: Handler<typeof kms.UntagResourceRequestSchema, typeof kms.UntagResourceResponseSchema> = async (req, ctx, s) => {
  if (req.tagKeys.length === 0) throw invalidArgument("tag_keys", "must not be empty");
  if (req.tagKeys.length > MAX_TAGS) throw invalidArgument("tag_keys", `at most ${MAX_TAGS}`);
  return changeTags(s, ctx, req.keyId, {}, [...req.tagKeys]);
};

export const listResourceTags: Handler<typeof kms.ListResourceTagsRequestSchema, typeof kms.ListResourceTagsResponseSchema> = async (
  req,
  ctx,
  s,
) => {
  const key = await s.lookup.find(ctx, req.keyId);
  return { tags: key.tags };
};
