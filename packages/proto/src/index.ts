// Generated code (src/gen, never edited) and the grpc-js bridge.
export * as kms from "./gen/kms/v1/service_pb";
export * as kmsResources from "./gen/kms/v1/resources_pb";
export * as hsm from "./gen/kms/hsm/v1/worker_pb";
// Kubernetes' KMS v2 plugin contract (package v2), served by services/kube-kms-plugin.
export * as k8sKmsV2 from "./gen/k8s/kms/v2/api_pb";
export * from "./grpc";
export { listenOnPrivateSocket } from "./unix-socket";
