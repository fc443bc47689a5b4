// One AWS call through the operation pipeline: the operation named by X-Amz-Target, SigV4 as the
// pipeline's identify step, the AWS JSON translated to and from kms.v1 in its decode and encode steps.
// The audit row records the AWS operation name; the key policy sees the kms.v1 action.
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { statusName } from "@kms/errors";
import type { KmsError } from "@kms/errors";
import { recordRequest } from "@kms/telemetry";
import type { Services } from "../../context";
import type { Operation } from "../../pipeline/operation";
import { OperationPipeline, newCallContext } from "../../pipeline/pipeline";
import type { Arns } from "./arns";
import { awsErrorOf } from "./errors";
import { Members, parseBody } from "./json";
import type { JsonObject } from "./json";
import type { AwsCall, AwsOperation } from "./operation";
import type { SignedRequest, SigV4Verifier } from "./sigv4";
import { AWS_OPERATIONS, unsupportedOperation } from "./table";

export interface AwsAnswer {
  httpStatus: number;
  requestId: string;
  /** JSON; the caller zeroes it once it is sent (it may hold a plaintext or data key). */
  body: Buffer;
}

export class AwsFront {
  private readonly pipeline: OperationPipeline;

  constructor(
    private readonly services: Services,
    private readonly verifier: SigV4Verifier,
    private readonly arns: Arns,
  ) {
    this.pipeline = new OperationPipeline(services);
  }

  /** Runs the operation `name` (X-Amz-Target's part after "TrentService."); never rejects. */
  async call(name: string, request: SignedRequest, peer: string): Promise<AwsAnswer> {
    const started = performance.now();
    // The body is parsed here to choose the operation (Encrypt: symmetric or RSA), but a malformed one
    // is refused in the pipeline's decode step, after authentication, like any other bad request.
    let members = new Members({});
    let malformed: KmsError | undefined;
    try {
      members = new Members(parseBody(request.body));
    } catch (err) {
      malformed = err as KmsError;
    }
    const aws = this.operationFor(name, members);
    const call: AwsCall = { arns: this.arns, members };
    const op: Operation = aws.around ? { ...aws.target, handle: aws.around(aws.target.handle, call) } : aws.target;
    const ctx = newCallContext(randomUUID(), op.name, undefined, name);
    let decoded: MessageShape<DescMessage> | undefined;
    const incoming = {
      peer,
      identify: () => this.verifier.verify(request),
      decode: () => {
        if (malformed) throw malformed;
        decoded = create(op.method.input, aws.decode(call));
        return decoded;
      },
    };
    const encode = (response: MessageInitShape<DescMessage>) =>
      Buffer.from(JSON.stringify(aws.encode(create(op.method.output, response), call, decoded!)));
    let answer: AwsAnswer;
    let code: number = status.OK;
    try {
      const body = await this.pipeline.invoke(op, ctx, incoming, encode);
      answer = { httpStatus: 200, requestId: ctx.requestId, body: Buffer.from(body.buffer, body.byteOffset, body.byteLength) };
    } catch (failure) {
      // The pipeline rejects with KmsError only.
      code = (failure as KmsError).status;
      answer = errorAnswer(failure as KmsError, ctx.requestId);
    }
    const ms = performance.now() - started;
    recordRequest(name, statusName(code), ms);
    this.services.log.debug("aws call", { requestId: ctx.requestId, operation: name, status: answer.httpStatus, ms: Math.round(ms) });
    return answer;
  }

  private operationFor(name: string, members: Members): AwsOperation {
    const entry = AWS_OPERATIONS.get(name);
    if (entry === undefined) return unsupportedOperation(name);
    return typeof entry === "function" ? entry(members) : entry;
  }
}

/** The AWS error body: {"__type": "<exception>", "message": "…"}. */
export function errorAnswer(failure: KmsError, requestId: string): AwsAnswer {
  const { type, httpStatus } = awsErrorOf(failure);
  const body: JsonObject = { __type: type, message: failure.message };
  return { httpStatus, requestId, body: Buffer.from(JSON.stringify(body)) };
}
