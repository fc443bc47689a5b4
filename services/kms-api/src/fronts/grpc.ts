// The gRPC front (kms.v1.KeyManagementService): raw request bytes in, the operation pipeline, raw reply
// bytes or a grpc-js status out. It sends the request id as a header, passes the peer's certificate to
// the authenticator, and wraps each call in its span and metrics (grpc-telemetry.ts).
import { randomUUID } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { Metadata } from "@grpc/grpc-js";
import type { sendUnaryData, ServerUnaryCall, UntypedHandleCall } from "@grpc/grpc-js";
import { invalidArgument, toStatus } from "@kms/errors";
import type { Authenticator } from "../auth/authenticate";
import type { Services } from "../context";
import { peerOf } from "../peer-throttle";
import type { Operation } from "../pipeline/operation";
import { OperationPipeline, newCallContext } from "../pipeline/pipeline";
import { traceRpc } from "./grpc-telemetry";

export const REQUEST_ID_KEY = "kms-request-id";

export function unaryHandler(op: Operation, pipeline: OperationPipeline, services: Services, authenticator: Authenticator): UntypedHandleCall {
  return (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
    const deadline = call.getDeadline();
    const ctx = newCallContext(randomUUID(), op.name, deadline instanceof Date ? deadline : Number.isFinite(deadline) ? new Date(deadline) : undefined);
    const header = new Metadata();
    header.set(REQUEST_ID_KEY, ctx.requestId);
    call.sendMetadata(header);
    const certificate = call.getAuthContext().sslPeerCertificate;
    const bytes = call.request;
    const incoming = {
      peer: peerOf(call.getPeer(), certificate),
      identify: () => authenticator.authenticate(call.metadata, certificate),
      decode: () => parse(op.method.input, bytes),
    };
    const encode = (response: Parameters<typeof create>[1]) => Buffer.from(toBinary(op.method.output, create(op.method.output, response)));
    // One span, request count and latency per call (grpc-telemetry.ts).
    void traceRpc(ctx, call.metadata, services, async () => {
      try {
        return (await pipeline.invoke(op, ctx, incoming, encode)) as Buffer;
      } catch (failure) {
        throw toStatus(failure);
      } finally {
        bytes.fill(0); // the request may have carried plaintext; the parsed message is done with
      }
    }).then(
      (reply) => callback(null, reply),
      (failure: ReturnType<typeof toStatus>) => callback(failure),
    );
  };
}

function parse<I extends DescMessage>(schema: I, bytes: Buffer): MessageShape<I> {
  try {
    return fromBinary(schema, bytes);
  } catch (err) {
    throw invalidArgument("request", `not a valid ${schema.typeName} message (${err instanceof Error ? err.message : "decode error"})`);
  }
}
