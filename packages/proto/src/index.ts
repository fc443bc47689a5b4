// The public API's generated code (src/gen, never edited) and the grpc-js bridge: what the SDK, the
// CLI and any client may use. The service-internal protocols are "@kms/proto/internal".
export * as kms from "./gen/kms/v1/service_pb";
export * as kmsResources from "./gen/kms/v1/resources_pb";
export * from "./grpc";
