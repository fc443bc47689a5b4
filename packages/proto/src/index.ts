// Generated code (src/gen, never edited) and the grpc-js bridge.
export * as kms from "./gen/kms/v1/service_pb";
export * as kmsResources from "./gen/kms/v1/resources_pb";
export * as hsm from "./gen/kms/hsm/v1/worker_pb";
export * from "./grpc";
