// The dev stack (`npm start`) and the process launcher the integration tests and the benchmark share.
export * from "./processes";
export * from "./embedded-postgres";
export { ensureDevAccessKey, newAccessKey, writeAccessKeysFile } from "./aws-access-keys";
export type { AwsAccessKey } from "./aws-access-keys";
