// EnableKey, DisableKey, ScheduleKeyDeletion, CancelKeyDeletion: one state change each, decided by
// the pure nextState() and applied under the key's row lock.
import { deleteTime, nextState, validateDescription } from "@kms/key-rules";
import type { LifecycleAction } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import type { KeyRecord } from "@kms/db";
import type { CallContext, Services } from "../context";
import { changeKey } from "../key-changes";
import { toKeyMetadata } from "../keys";
import type { Handler } from "../pipeline/operation";

const lifecycleKey = (key: KeyRecord) => ({
  keyId: key.keyId,
  keyState: key.keyState,
  deletionProtection: key.deletionProtection,
  hasMaterial: key.primaryKeyVersionId !== null,
});

function simpleTransition(action: LifecycleAction) {
  return async (req: { keyId: string }, ctx: CallContext, s: Services) => {
    const key = await changeKey(s, ctx, req.keyId, (k) => {
      const keyState = nextState(lifecycleKey(k), action);
      return action === "CancelKeyDeletion" ? { keyState, deleteTime: null, deletionRequestedBy: "" } : { keyState };
    });
    return { keyMetadata: toKeyMetadata(key) };
  };
}

export const enableKey: Handler<typeof kms.EnableKeyRequestSchema, typeof kms.EnableKeyResponseSchema> = simpleTransition("EnableKey");
export const disableKey: Handler<typeof kms.DisableKeyRequestSchema, typeof kms.DisableKeyResponseSchema> = simpleTransition("DisableKey");
export const cancelKeyDeletion: Handler<typeof kms.CancelKeyDeletionRequestSchema, typeof kms.CancelKeyDeletionResponseSchema> =
  simpleTransition("CancelKeyDeletion");

export const scheduleKeyDeletion: Handler<typeof kms.ScheduleKeyDeletionRequestSchema, typeof kms.ScheduleKeyDeletionResponseSchema> = async (
  req,
  ctx,
  s,
) => {
  const when = deleteTime(s.clock(), req.pendingWindowInDays);
  const key = await changeKey(s, ctx, req.keyId, (k) => ({
    keyState: nextState(lifecycleKey(k), "ScheduleKeyDeletion"),
    deleteTime: when,
    deletionRequestedBy: ctx.principal,
  }));
  return { keyMetadata: toKeyMetadata(key) };
};

export const setDeletionProtection: Handler<typeof kms.SetDeletionProtectionRequestSchema, typeof kms.SetDeletionProtectionResponseSchema> = async (
  req,
  ctx,
  s,
) => {
  validateDescription(req.description);
  const key = await changeKey(s, ctx, req.keyId, () => ({
    deletionProtection: req.enable,
    deletionProtectionDescription: req.enable ? req.description : "",
  }));
  return { keyMetadata: toKeyMetadata(key) };
};

export const updateKeyDescription: Handler<typeof kms.UpdateKeyDescriptionRequestSchema, typeof kms.UpdateKeyDescriptionResponseSchema> = async (
  req,
  ctx,
  s,
) => {
  validateDescription(req.description);
  const key = await changeKey(s, ctx, req.keyId, () => ({ description: req.description }));
  return { keyMetadata: toKeyMetadata(key) };
};
