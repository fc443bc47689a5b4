// The plugin's parts, for tests and embedding; main.ts is the process.
export { loadPluginConfig } from "./config";
export type { PluginConfig } from "./config";
export { KubeKmsPlugin, PluginError, pluginKeyId, API_VERSION, HEALTHY } from "./plugin";
export type { KmsCalls, PluginOptions } from "./plugin";
export { createServer, listen } from "./server";
export * from "./limits";
