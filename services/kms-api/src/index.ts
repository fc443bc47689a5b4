// Library surface for tests and tools; the process entry is main.ts.
export { buildServer } from "./server";
export { PageTokens } from "./page-tokens";
export { REQUEST_ID_KEY, DEV_PRINCIPAL } from "./rpc";
