// Configuration is read once at start-up: raw environment → defaults → validated object. A bad value
// stops the process with a message naming the variable.
export { ConfigError, VARIABLES, raw } from "./variables";
export type { Env, VariableName } from "./variables";
export { isLoopback, logLevel, parseListen, readPem } from "./values";
export type { ListenAddress, LogLevel } from "./values";
export { loadWorkerConfig, workerThreadPoolSize } from "./worker-config";
export type { KeyGenerationConfig, Pkcs11Config, WorkerConfig } from "./worker-config";
export { checkCertificateAndKey, checkDatabaseTls } from "./auth-config";
export type { AccessConfig, JwtConfig, TlsConfig } from "./auth-config";
export { loadApiConfig } from "./api-config";
export type { ApiConfig, AwsConfig, LimitsConfig } from "./api-config";
export { SOFTHSM2_MODULE, loadDevStackConfig } from "./dev-stack-config";
export type { DevStackConfig } from "./dev-stack-config";
