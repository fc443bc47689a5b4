// @kms/client: the typed kms.v1 client and streaming envelope encryption.
export { KmsClient, DEFAULT_DEADLINE_MS, DRY_RUN_OPERATION } from "./client";
export type { DryRunMethod, DryRunResult, KmsCallOptions, KmsClientOptions, KmsMethods } from "./client";
export { KmsClientError, ERROR_CODE_KEY, REQUEST_ID_KEY } from "./errors";
export { IntegrityError, crc32c } from "@kms/integrity";
export { DEFAULT_RETRY, backoffDelay, isRetryable } from "./retry";
export type { RetryOptions } from "./retry";
export { DataKeyCache } from "./cache";
export type { DataKeyCacheOptions } from "./cache";
export type { DataKeyLease, DataKeySource } from "./data-keys";
export { EncryptStream, DecryptStream } from "./stream";
export type { EncryptStreamOptions } from "./stream";
export { StreamFormatError, hasMagic, DEFAULT_CHUNK_SIZE } from "./format";
export type { EncryptionContext } from "./format";
export { clientCredentials, tokenFromFile, TOKEN_FILE_REREAD_MS } from "./credentials";
export type { ClientTls } from "./credentials";
