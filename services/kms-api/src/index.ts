// Library surface for tests and tools; the process entry is main.ts.
export { buildServer } from "./server";
export { PageTokens } from "./page-tokens";
export { REQUEST_ID_KEY } from "./fronts/grpc";
export { Authenticator, DEV_PRINCIPAL } from "./auth/authenticate";
export { createServices } from "./services";
export type { ServicesOptions } from "./services";
export { JobScheduler } from "./jobs/scheduler";
export type { Services } from "./context";
export { listenForKeyEvents } from "./key-events";
