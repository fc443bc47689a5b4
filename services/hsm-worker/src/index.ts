// Entry points for code that embeds the worker (the dev stack, integration tests).
export type { Backend, BackendStatus } from "./backend";
export { createBackend } from "./create-backend";
export { createHsmWorkerServer, listen } from "./server";
export { HsmBackend } from "./pkcs11/hsm-backend";
export type { HsmBackendOptions } from "./pkcs11/hsm-backend";
export { SoftwareRootBackend } from "./software/software-root";
