// For the services only (the package's exports map keeps it out of the public entry point): the
// kms-api ↔ hsm-worker protocol, Kubernetes' KMS v2 plugin contract (served by kube-kms-plugin), and
// the private Unix socket both listen on.
export * as hsm from "./gen/kms/hsm/v1/worker_pb";
export * as k8sKmsV2 from "./gen/k8s/kms/v2/api_pb";
export { listenOnPrivateSocket } from "./unix-socket";
