// What one AWS operation is: the kms.v1 operation it runs through the pipeline, and the two translations
// (AWS JSON → kms.v1 request inside the pipeline's decode step; kms.v1 response → AWS JSON inside its
// encode step, so a failure there is audited too). `around` adds what AWS semantics need beyond kms.v1
// (Decrypt's KeyId must be the blob's key) to the same handler call: still one pipeline call, one audit row.
import type { DescMessage, DescMethod, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { OPERATIONS } from "../../operations";
import type { Handler, Operation } from "../../pipeline/operation";
import type { Arns } from "./arns";
import type { JsonObject, Members } from "./json";

/** One call's translation state: the ARNs and the request's members. */
export interface AwsCall {
  arns: Arns;
  members: Members;
}

export interface AwsOperation<I extends DescMessage = DescMessage, O extends DescMessage = DescMessage> {
  /** The kms.v1 operation: its handler, declarations and policy action (kms:<its name>). */
  target: Operation<I, O>;
  decode(call: AwsCall): MessageInitShape<I>;
  encode(response: MessageShape<O>, call: AwsCall, request: MessageShape<I>): JsonObject;
  around?: (handle: Handler<I, O>, call: AwsCall) => Handler<I, O>;
}

/** An operation, or a choice between operations made from the request (Encrypt: symmetric or RSA). */
export type AwsEntry = AwsOperation | ((members: Members) => AwsOperation);

export function awsOperation<I extends DescMessage, O extends DescMessage>(
  method: DescMethod & { input: I; output: O },
  definition: Omit<AwsOperation<I, O>, "target">,
): AwsOperation {
  const target = OPERATIONS.get(method.name) as Operation<I, O> | undefined;
  if (!target) throw new Error(`no kms.v1 operation ${method.name}`);
  // AWS's DryRun and GrantTokens members, wherever the kms.v1 request has dry_run and grant_tokens. Read
  // before the operation's own members, whose secrets come last (nothing may fail after them).
  const fields = new Set(method.input.fields.map((f) => f.name));
  const decode = (call: AwsCall): MessageInitShape<I> => {
    const checks = {
      ...(fields.has("dry_run") ? { dryRun: call.members.boolean("DryRun") ?? false } : {}),
      ...(fields.has("grant_tokens") ? { grantTokens: call.members.strings("GrantTokens") } : {}),
    };
    return { ...checks, ...definition.decode(call) } as MessageInitShape<I>;
  };
  return { target, ...definition, decode } as unknown as AwsOperation;
}

/** The kms.v1 key_id of a request whose only key member is KeyId. */
export const keyIdRequest = ({ members, arns }: Pick<AwsCall, "members" | "arns">) => ({ keyId: arns.keyReference(members.requiredString("KeyId")) });

/** Responses of operations AWS answers with an empty body. */
export const empty = (): JsonObject => ({});
