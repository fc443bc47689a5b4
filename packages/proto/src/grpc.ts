// Bridges protobuf-es service descriptors to grpc-js: grpc-js wants a ServiceDefinition with
// serializers, protobuf-es gives descriptors with toBinary/fromBinary.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, DescMethodBiDiStreaming, DescService, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { Client, credentials } from "@grpc/grpc-js";
import type { CallOptions, ChannelOptions, ChannelCredentials, ClientDuplexStream, Metadata, ServiceDefinition } from "@grpc/grpc-js";

export interface DefinitionOptions {
  /**
   * Hand request bytes to the handler unparsed and take its reply as ready-made bytes. The kms-api
   * parses requests itself so that a malformed message becomes INVALID_ARGUMENT (grpc-js would answer
   * INTERNAL for a deserializer error).
   */
  raw?: boolean;
}

/**
 * A grpc-js service definition for a protobuf-es service, keyed by the RPC's proto name (e.g. "Encrypt"):
 * its unary and bidirectional-streaming methods (the only kinds the protos use).
 */
export function grpcServiceDefinition(service: DescService, options: DefinitionOptions = {}): ServiceDefinition {
  const definition: Record<string, ServiceDefinition[string]> = {};
  for (const method of service.methods) {
    if (method.methodKind !== "unary" && method.methodKind !== "bidi_streaming") continue;
    const streaming = method.methodKind === "bidi_streaming";
    definition[method.name] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: streaming,
      responseStream: streaming,
      requestSerialize: (message: MessageShape<DescMessage>) => Buffer.from(toBinary(method.input, message)),
      requestDeserialize: options.raw ? (bytes: Buffer) => bytes : (bytes: Buffer) => fromBinary(method.input, bytes),
      responseSerialize: options.raw
        ? (bytes: Buffer) => bytes
        : (message: MessageShape<DescMessage>) => Buffer.from(toBinary(method.output, message)),
      responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
      originalName: method.localName,
    };
  }
  return definition;
}

/** Per-call options of a PromiseClient method. */
export interface PromiseCallOptions {
  /** Absolute deadline, or milliseconds from now. */
  deadline?: Date | number;
  metadata?: Metadata;
  /** Called with the response headers (e.g. the service's kms-request-id). */
  onHeaders?: (headers: Metadata) => void;
}

/** A typed client whose methods take a message init and return a promise of the response (unary methods only). */
export type PromiseClient<T extends GenServiceMethods> = {
  [K in keyof T as T[K]["methodKind"] extends "unary" ? K : never]: (
    request: MessageInitShape<T[K]["input"]>,
    options?: PromiseCallOptions,
  ) => Promise<MessageShape<T[K]["output"]>>;
} & { close(): void; channel: Client };

/** Opens a channel to `address` (e.g. "unix:///run/kms/worker.sock" or "127.0.0.1:7300"). */
export function createPromiseClient<T extends GenServiceMethods>(
  service: Omit<DescService, "method"> & { method: { [K in keyof T]: T[K] & DescService["methods"][number] } },
  address: string,
  channelCredentials: ChannelCredentials = credentials.createInsecure(),
  channelOptions: ChannelOptions = {},
): PromiseClient<T> {
  const client = new Client(address, channelCredentials, channelOptions);
  const result: Record<string, unknown> = {
    close: () => client.close(),
    channel: client,
  };
  for (const method of (service as DescService).methods) {
    if (method.methodKind !== "unary") continue;
    const path = `/${service.typeName}/${method.name}`;
    result[method.localName] = (request: MessageInitShape<DescMessage>, options: PromiseCallOptions = {}) =>
      new Promise((resolve, reject) => {
        const callOptions: CallOptions = {};
        if (options.deadline !== undefined) {
          callOptions.deadline =
            typeof options.deadline === "number" ? Date.now() + options.deadline : options.deadline;
        }
        const message = create(method.input, request);
        const callback = (err: unknown, response: unknown) => (err ? reject(err) : resolve(response));
        const serialize = (m: MessageShape<DescMessage>) => Buffer.from(toBinary(method.input, m));
        const deserialize = (b: Buffer) => fromBinary(method.output, b);
        const call = options.metadata
          ? client.makeUnaryRequest(path, serialize, deserialize, message, options.metadata, callOptions, callback)
          : client.makeUnaryRequest(path, serialize, deserialize, message, callOptions, callback);
        if (options.onHeaders) call.on("metadata", options.onHeaders);
      });
  }
  return result as PromiseClient<T>;
}

/** Opens a bidirectional stream of `method` on `client`'s channel; messages go in and out as protobuf-es messages. */
export function openBidiStream<I extends DescMessage, O extends DescMessage>(
  client: Client,
  method: DescMethodBiDiStreaming<I, O>,
  options: CallOptions = {},
): ClientDuplexStream<MessageShape<I>, MessageShape<O>> {
  return client.makeBidiStreamRequest(
    `/${method.parent.typeName}/${method.name}`,
    (m: MessageShape<I>) => Buffer.from(toBinary(method.input, m)),
    (b: Buffer) => fromBinary(method.output, b),
    options,
  );
}
