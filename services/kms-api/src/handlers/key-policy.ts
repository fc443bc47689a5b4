// GetKeyPolicy and SetKeyPolicy. A policy that would lock its author out (no kms:SetKeyPolicy for the
// caller) is refused, as AWS's policy lockout safety check does.
import { invalidArgument } from "@kms/errors";
import { conditionValues, evaluate } from "@kms/key-policy";
import type { kms } from "@kms/proto";

import type { CallContext, Services } from "../context";
import { changeKey } from "../key-changes";

import type { Handler } from "../pipeline/operation";

function checkPolicyName(name: string): void {
  if (name !== "" && name !== "default") throw invalidArgument("policy_name", 'only "default" exists');
}

/** Validates a policy document (INVALID_ARGUMENT naming the bad path) and the lockout check. */
export function checkedPolicy(s: Services, ctx: CallContext, text: string): string {
  const policy = s.policies.policy(text);
  const decision = evaluate(policy, {
    principal: ctx.principal,
    action: "kms:SetKeyPolicy",
    values: conditionValues({ principal: ctx.principal, mutualTls: ctx.mutualTls }),
  });
  if (decision !== "Allow") {
    throw invalidArgument("policy", `would lock out ${ctx.principal}: it must allow them kms:SetKeyPolicy`);
  }
  return text;
}

export const getKeyPolicy: Handler<typeof kms.GetKeyPolicyRequestSchema, typeof kms.GetKeyPolicyResponseSchema> = async (req, ctx, s) => {
  checkPolicyName(req.policyName);
  const key = await s.lookup.find(ctx, req.keyId);
  return { policy: s.authorizer.policyOf(key) };
};

export const setKeyPolicy: Handler<typeof kms.SetKeyPolicyRequestSchema, typeof kms.SetKeyPolicyResponseSchema> = async (req, ctx, s) => {
  checkPolicyName(req.policyName);
  // The document is looked at only once changeKey has authorized the caller: someone who may not set
  // this key's policy gets PERMISSION_DENIED, not a verdict on their document or the lockout check.
  await changeKey(s, ctx, req.keyId, () => ({ policy: checkedPolicy(s, ctx, req.policy) }));
  return { policy: req.policy };
};
