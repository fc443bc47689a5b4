// A batch: many operations, each with its own outcome. kms-api coalesces the operations of concurrent
// requests into one batch (a message of BatchStream), so the cost of the hop is paid once per batch.
// Operations run concurrently; the session pool bounds how many reach the HSM at once. Each case of
// Operation runs its registered operation (operations.ts BATCHED).
import { create } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { invalidArgument, outcomeOf } from "@kms/errors";
import { hsm } from "@kms/proto/internal";
import type { Backend } from "./backend";
import type { Reply } from "./handlers";
import { BATCHED, logFailure } from "./operations";

const MAX_OPERATIONS = 10_000;

type Result = MessageInitShape<typeof hsm.OperationResultSchema>;
type AnyOperation = (backend: Backend, request: unknown) => Promise<Reply<unknown>>;

async function runOne(backend: Backend, op: hsm.Operation, wipes: Buffer[]): Promise<Result> {
  const kind = op.op.case;
  if (kind === undefined) throw invalidArgument("operations", "an operation names no request");
  const reply = await (BATCHED[kind] as AnyOperation)(backend, op.op.value);
  if (reply.wipeAfterSend) wipes.push(...reply.wipeAfterSend);
  return { result: { case: kind, value: reply.response } } as Result;
}

function failure(err: unknown): Result {
  logFailure("batch operation", err);
  return { result: { case: "error", value: outcomeOf(err) } };
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
