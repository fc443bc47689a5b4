// Wiring only: which handler serves which RPC, plus health and reflection.
// Every RPC goes through the gRPC front (fronts/grpc.ts) onto the operation pipeline (pipeline/).
import { toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, file_google_protobuf_duration, file_google_protobuf_timestamp } from "@bufbuild/protobuf/wkt";
import type { DescMethod } from "@bufbuild/protobuf";
import { Server } from "@grpc/grpc-js";
import type { UntypedHandleCall } from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import { unimplemented } from "@kms/errors";
import { grpcServiceDefinition, kms, kmsResources } from "@kms/proto";
import type { Authenticator } from "./auth/authenticate";
import type { Services } from "./context";
import { unaryHandler } from "./fronts/grpc";
import { OPERATIONS } from "./operations";
import { operation } from "./pipeline/operation";
import { OperationPipeline } from "./pipeline/pipeline";

const SERVICE_NAME = kms.KeyManagementService.typeName;

export interface KmsServer {
  server: Server;
  health: HealthImplementation;
}

export function buildServer(
  services: Services,
  authenticator: Authenticator,
  options: ConstructorParameters<typeof Server>[0] = {},
): KmsServer {
  const server = new Server(options);
  const pipeline = new OperationPipeline(services);
  const implementation: Record<string, UntypedHandleCall> = {};
  for (const method of kms.KeyManagementService.methods as DescMethod[]) {
    const op =
      OPERATIONS.get(method.name) ??
      operation(method, async () => {
        throw unimplemented(method.name);
      });
    implementation[method.name] = unaryHandler(op, pipeline, services, authenticator);
  }
  server.addService(grpcServiceDefinition(kms.KeyManagementService, { raw: true }), implementation);

  const health = new HealthImplementation({ "": "SERVING", [SERVICE_NAME]: "SERVING" });
  health.addToServer(server);

  // Reflection needs the serialized descriptors of the public API and the well-known types it imports.
  const files = [file_google_protobuf_timestamp, file_google_protobuf_duration, kmsResources.file_kms_v1_resources, kms.file_kms_v1_service];
  const reflection = new ReflectionService(
    { kms: { format: "Protocol Buffer 3 FileDescriptorProto", fileDescriptorProtos: files.map((f) => Buffer.from(toBinary(FileDescriptorProtoSchema, f.proto))) } } as never,
  );
  reflection.addToServer(server);
  return { server, health };
}

/** A server with nothing but the health service, for probes that cannot speak TLS. */
export function buildHealthServer(health: HealthImplementation): Server {
  const server = new Server();
  health.addToServer(server);
  return server;
}

export { SERVICE_NAME };
