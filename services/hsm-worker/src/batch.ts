// A batch: many operations, each with its own outcome. kms-api coalesces the operations of concurrent
// requests into one batch (a message of BatchStream), so the cost of the hop is paid once per batch.
// Operations run concurrently; the session pool bounds how many reach the HSM at once.
import { create } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { ERROR_CODE_KEY, InternalError, KmsError, invalidArgument, toStatus } from "@kms/errors";
import { hsm } from "@kms/proto";
import type { Backend } from "./backend";
import * as handlers from "./handlers";
import type { Reply } from "./handlers";
import { describeError, log } from "./log";

const MAX_OPERATIONS = 10_000;

type Result = MessageInitShape<typeof hsm.OperationResultSchema>;

async function runOne(backend: Backend, op: hsm.Operation, wipes: Buffer[]): Promise<Result> {
  const keep = <T>(reply: Reply<T>): T => {
    if (reply.wipeAfterSend) wipes.push(...reply.wipeAfterSend);
    return reply.response;
  };
  switch (op.op.case) {
    case "encrypt":
      return { result: { case: "encrypt", value: keep(await handlers.encrypt(backend, op.op.value)) } };
    case "decrypt":
      return { result: { case: "decrypt", value: keep(await handlers.decrypt(backend, op.op.value)) } };
    case "generateDataKey":
      return { result: { case: "generateDataKey", value: keep(await handlers.generateDataKey(backend, op.op.value)) } };
    case "sign":
      return { result: { case: "sign", value: keep(await handlers.sign(backend, op.op.value)) } };
    case "reEncrypt":
      return { result: { case: "reEncrypt", value: keep(await handlers.reEncrypt(backend, op.op.value)) } };
    case "generateMac":
      return { result: { case: "generateMac", value: keep(await handlers.generateMac(backend, op.op.value)) } };
    default:
      throw invalidArgument("operations", "an operation names no request");
  }
}

function failure(err: unknown): Result {
  if (!(err instanceof KmsError)) {
    log("error", "batch operation failed", { error: describeError(err instanceof InternalError ? err : new InternalError("unexpected error", { cause: err })) });
  } else if (err.status === status.UNAVAILABLE) {
    log("warn", `batch operation: ${err.message}`, { error: describeError(err.cause) });
  }
  const s = toStatus(err);
  return { result: { case: "error", value: { code: s.code, message: s.details, errorCode: String(s.metadata.get(ERROR_CODE_KEY)[0] ?? "") } } };
}

export interface BatchOutcome {
  /** One per operation, in order. */
  results: hsm.OperationResult[];
  /** Secrets in the results (e.g. data keys), to zero once they are serialised. */
  wipeAfterSend: Buffer[];
}

export async function batch(backend: Backend, operations: hsm.Operation[]): Promise<BatchOutcome> {
  if (operations.length > MAX_OPERATIONS) throw invalidArgument("operations", `at most ${MAX_OPERATIONS}`);
  const wipes: Buffer[] = [];
  const results = await Promise.all(operations.map((op) => runOne(backend, op, wipes).catch(failure)));
  return { results: results.map((r) => create(hsm.OperationResultSchema, r)), wipeAfterSend: wipes };
}

/** Every operation's result when the whole batch failed (e.g. too many operations). */
export function failedBatch(size: number, err: unknown): hsm.OperationResult[] {
  const result = create(hsm.OperationResultSchema, failure(err));
  return Array.from({ length: size }, () => result);
}
