// Span and metric attribute names, in one place so that every span and instrument spells them the same
// way. The rpc.* names follow the OpenTelemetry semantic conventions for RPC; kms.* are this service's.
// Values are metadata only: never plaintext, key material, PINs, tokens or encryption-context values.

/** "grpc". */
export const ATTR_RPC_SYSTEM = "rpc.system";
/** The full service name, e.g. "kms.v1.KeyManagementService". */
export const ATTR_RPC_SERVICE = "rpc.service";
/** The method name, e.g. "Encrypt". */
export const ATTR_RPC_METHOD = "rpc.method";
/** The numeric gRPC status code of the reply (0 = OK). */
export const ATTR_RPC_GRPC_STATUS_CODE = "rpc.grpc.status_code";
/** The gRPC status name of the reply ("OK", "INVALID_ARGUMENT", ...): the label of the request metrics. */
export const ATTR_KMS_STATUS = "kms.status";
/** The kms-error-code trailer of a failed reply (e.g. "InvalidCiphertext"). */
export const ATTR_KMS_ERROR_CODE = "kms.error_code";
/** The kms-request-id the caller got in its response headers (and the audit row carries). */
export const ATTR_KMS_REQUEST_ID = "kms.request_id";
/** The CMK the request named or used (a key id, never an alias' target material). */
export const ATTR_KMS_KEY_ID = "kms.key_id";
/** The key version the worker used. */
export const ATTR_KMS_KEY_VERSION_ID = "kms.key_version_id";
/** The worker operation, e.g. "Encrypt", "GenerateKeyMaterial". */
export const ATTR_HSM_OPERATION = "kms.hsm.operation";
/** The key spec of the key the worker used or made, e.g. "AES_256". */
export const ATTR_KMS_KEY_SPEC = "kms.key_spec";
/** "HSM" or "SOFTWARE". */
export const ATTR_KMS_PROTECTION_LEVEL = "kms.protection_level";
/** Which cache a hit/miss gauge describes: "key_metadata" or "key_policy". */
export const ATTR_KMS_CACHE = "kms.cache";
