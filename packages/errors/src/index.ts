// User errors and internal errors are different types. A KmsError's message is safe to send to the
// caller; an InternalError keeps its cause for the log and sends nothing of it over the wire.
// toServiceError() is the one place where anything thrown becomes a gRPC status.
import { Metadata, status } from "@grpc/grpc-js";
import type { ServiceError, StatusObject } from "@grpc/grpc-js";

/** Trailing-metadata key that carries the stable, machine-readable error code. */
export const ERROR_CODE_KEY = "kms-error-code";

/** The stable error codes, documented in the README. Alibaba Cloud KMS style. */
export const ErrorCode = {
  InvalidParameter: "InvalidParameter",
  InvalidCiphertext: "InvalidCiphertext",
  KeyNotFound: "Forbidden.KeyNotFound",
  AliasNotFound: "Forbidden.AliasNotFound",
  KeyVersionNotFound: "Forbidden.KeyVersionNotFound",
  Disabled: "Rejected.Disabled",
  PendingDeletion: "Rejected.PendingDeletion",
  PendingImport: "Rejected.PendingImport",
  DeletionProtected: "Rejected.DeletionProtection",
  KeyUsage: "Rejected.KeyUsage",
  // An imported key's version has made as many AES-GCM encryptions as one key may (random IVs).
  EncryptionLimit: "Rejected.EncryptionLimit",
  HsmUnsupported: "Rejected.HsmUnsupported",
  RootKeyMismatch: "Rejected.RootKeyMismatch",
  AliasExists: "AlreadyExists.Alias",
  TooManyTags: "Rejected.TooManyTags",
  // Key import: a token this service did not issue or issued for another key; one past its 24 h; one
  // already used; material other than what the key held before.
  InvalidImportToken: "InvalidImportToken",
  ImportTokenExpired: "Rejected.ImportTokenExpired",
  ImportTokenUsed: "Rejected.ImportTokenUsed",
  IncorrectKeyMaterial: "Rejected.IncorrectKeyMaterial",
  // Only the AWS-compatible API answers these (services/kms-api/src/fronts/aws): Decrypt or ReEncrypt
  // naming another key than the blob's; Verify and VerifyMac of a signature or MAC that does not match.
  IncorrectKey: "Rejected.IncorrectKey",
  InvalidSignature: "Rejected.InvalidSignature",
  InvalidMac: "Rejected.InvalidMac",
  // A request's `<field>_crc32c` is not the CRC32C of the bytes that arrived (corrupted on the way).
  ChecksumMismatch: "Rejected.ChecksumMismatch",
  // Grants (docs/grants.md): a name already used for another grant of the key; a key at its grant limit;
  // a grant id the key does not have (told only to callers the key policy lets revoke or list).
  GrantExists: "AlreadyExists.Grant",
  TooManyGrants: "Rejected.TooManyGrants",
  GrantNotFound: "Forbidden.GrantNotFound",
  // A dry run (dry_run = true) that would have succeeded: AWS's DryRunOperationException. Not a result.
  DryRunOperation: "DryRunOperation",
  Unauthenticated: "Unauthenticated",
  PermissionDenied: "Forbidden.NoPermission",
  Throttled: "Throttling",
  Unavailable: "ServiceUnavailable",
  DeadlineExceeded: "DeadlineExceeded",
  Unimplemented: "UnsupportedOperation",
  Internal: "InternalFailure",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The gRPC status each error code travels with: chosen here once, not at each place that throws. */
const STATUS_OF: { readonly [C in ErrorCode]: status } = {
  [ErrorCode.InvalidParameter]: status.INVALID_ARGUMENT,
  [ErrorCode.InvalidCiphertext]: status.INVALID_ARGUMENT,
  [ErrorCode.KeyNotFound]: status.NOT_FOUND,
  [ErrorCode.AliasNotFound]: status.NOT_FOUND,
  [ErrorCode.KeyVersionNotFound]: status.NOT_FOUND,
  [ErrorCode.Disabled]: status.FAILED_PRECONDITION,
  [ErrorCode.PendingDeletion]: status.FAILED_PRECONDITION,
  [ErrorCode.PendingImport]: status.FAILED_PRECONDITION,
  [ErrorCode.DeletionProtected]: status.FAILED_PRECONDITION,
  [ErrorCode.KeyUsage]: status.FAILED_PRECONDITION,
  [ErrorCode.EncryptionLimit]: status.FAILED_PRECONDITION,
  [ErrorCode.HsmUnsupported]: status.FAILED_PRECONDITION,
  [ErrorCode.RootKeyMismatch]: status.FAILED_PRECONDITION,
  [ErrorCode.AliasExists]: status.ALREADY_EXISTS,
  [ErrorCode.TooManyTags]: status.FAILED_PRECONDITION,
  [ErrorCode.InvalidImportToken]: status.INVALID_ARGUMENT,
  [ErrorCode.ImportTokenExpired]: status.INVALID_ARGUMENT,
  [ErrorCode.ImportTokenUsed]: status.INVALID_ARGUMENT,
  [ErrorCode.IncorrectKeyMaterial]: status.INVALID_ARGUMENT,
  [ErrorCode.IncorrectKey]: status.INVALID_ARGUMENT,
  [ErrorCode.InvalidSignature]: status.INVALID_ARGUMENT,
  [ErrorCode.InvalidMac]: status.INVALID_ARGUMENT,
  [ErrorCode.ChecksumMismatch]: status.INVALID_ARGUMENT,
  [ErrorCode.GrantExists]: status.ALREADY_EXISTS,
  [ErrorCode.TooManyGrants]: status.FAILED_PRECONDITION,
  [ErrorCode.GrantNotFound]: status.NOT_FOUND,
  // As AWS's HTTP 412: a status no client can take for a result, and one no retry policy retries.
  [ErrorCode.DryRunOperation]: status.FAILED_PRECONDITION,
  [ErrorCode.Unauthenticated]: status.UNAUTHENTICATED,
  [ErrorCode.PermissionDenied]: status.PERMISSION_DENIED,
  [ErrorCode.Throttled]: status.RESOURCE_EXHAUSTED,
  [ErrorCode.Unavailable]: status.UNAVAILABLE,
  [ErrorCode.DeadlineExceeded]: status.DEADLINE_EXCEEDED,
  [ErrorCode.Unimplemented]: status.UNIMPLEMENTED,
  [ErrorCode.Internal]: status.INTERNAL,
};

/** True for the codes this version knows (a peer of another version may send others). */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(STATUS_OF, code);
}

/** The gRPC status `code` travels with. */
export function statusOfCode(code: ErrorCode): status {
  return STATUS_OF[code];
}

const STATUS_NAMES = Object.fromEntries(Object.entries(status).map(([name, code]) => [code, name])) as Record<number, string>;

/** The gRPC status code's name, e.g. "INVALID_ARGUMENT", as audit rows and metrics record it. */
export function statusName(code: number): string {
  return STATUS_NAMES[code] ?? String(code);
}

/** The one message every malformed, tampered, truncated or mismatched ciphertext gets. */
export const INVALID_CIPHERTEXT_MESSAGE = "ciphertext or encryption context is invalid";

/** An error whose message and code are meant for the caller; its gRPC status follows from the code. */
export class KmsError extends Error {
  override readonly name = "KmsError";
  readonly status: status;
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.status = STATUS_OF[code];
  }
}

/** A bug or an unexpected failure. Its message and cause go to the log only. */
export class InternalError extends Error {
  override readonly name = "InternalError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export const invalidArgument = (field: string, problem: string): KmsError =>
  new KmsError(ErrorCode.InvalidParameter, `${field}: ${problem}`);

export const invalidCiphertext = (): KmsError =>
  new KmsError(ErrorCode.InvalidCiphertext, INVALID_CIPHERTEXT_MESSAGE);

export const keyNotFound = (keyId: string): KmsError =>
  new KmsError(ErrorCode.KeyNotFound, `key ${JSON.stringify(keyId)} not found`);

export const unavailable = (what: string): KmsError =>
  new KmsError(ErrorCode.Unavailable, `${what} is unavailable; retry is safe`);

/** The call's deadline (or the database's statement timeout) passed before `what` answered; nothing took effect. */
export const deadlineExceeded = (what: string): KmsError =>
  new KmsError(ErrorCode.DeadlineExceeded, `${what} did not answer before the deadline`);

export const unimplemented = (rpc: string): KmsError =>
  new KmsError(ErrorCode.Unimplemented, `${rpc} is not implemented yet`);

/**
 * Turns anything thrown into a gRPC status for the wire. Only KmsError messages cross; everything
 * else becomes a fixed INTERNAL message (the caller logs the original).
 */
export function toStatus(err: unknown): Partial<StatusObject> & { code: status; details: string; metadata: Metadata } {
  const metadata = new Metadata();
  if (err instanceof KmsError) {
    metadata.set(ERROR_CODE_KEY, err.code);
    return { code: err.status, details: err.message, metadata };
  }
  metadata.set(ERROR_CODE_KEY, ErrorCode.Internal);
  return { code: status.INTERNAL, details: "internal error", metadata };
}

/** True when a gRPC client error means the peer could not be reached or did not answer in time. */
function isTransportFailure(code: status): boolean {
  return code === status.UNAVAILABLE || code === status.DEADLINE_EXCEEDED || code === status.CANCELLED;
}

/**
 * Turns an error from a gRPC call to an internal peer (the hsm-worker) back into a KmsError when the
 * peer sent one; a transport failure becomes UNAVAILABLE; anything else is an InternalError.
 */
export function fromPeerError(err: unknown, peer: string): KmsError | InternalError {
  const e = err as Partial<ServiceError>;
  if (typeof e?.code === "number") {
    if (isTransportFailure(e.code)) {
      const code = e.metadata?.get(ERROR_CODE_KEY)[0];
      // A peer that itself reports UNAVAILABLE (HSM session lost) keeps its message.
      if (e.code === status.UNAVAILABLE && typeof code === "string") {
        return new KmsError(ErrorCode.Unavailable, e.details ?? `${peer} is unavailable`);
      }
      return unavailable(peer);
    }
    const code = e.metadata?.get(ERROR_CODE_KEY)[0];
    if (typeof code === "string" && isErrorCode(code) && e.code !== status.INTERNAL && e.code !== status.UNKNOWN) {
      return new KmsError(code, e.details ?? "");
    }
  }
  return new InternalError(`${peer} call failed`, { cause: err });
}

/**
 * One item of a batch fails on its own: its outcome is what the single call would have answered (status
 * code, message, kms-error-code), carried as data instead of as the call's status.
 */
export interface Outcome {
  /** gRPC status code; never OK for a failure. */
  code: status;
  message: string;
  /** The kms-error-code. */
  errorCode: string;
}

/** The per-item outcome of anything thrown: a KmsError's status, message and code; anything else INTERNAL. */
export function outcomeOf(err: unknown): Outcome {
  const s = toStatus(err);
  return { code: s.code, message: s.details, errorCode: String(s.metadata.get(ERROR_CODE_KEY)[0] ?? "") };
}

/** A peer's failed item as the error to throw: its KmsError, or an InternalError for INTERNAL and UNKNOWN. */
export function errorOfOutcome(outcome: { code: number; message: string; errorCode: string }, peer: string): KmsError | InternalError {
  if (outcome.code === status.INTERNAL || outcome.code === status.UNKNOWN) return new InternalError(`${peer} operation failed: ${outcome.message}`);
  if (!isErrorCode(outcome.errorCode)) return new InternalError(`${peer} operation failed (${outcome.errorCode}): ${outcome.message}`);
  return new KmsError(outcome.errorCode, outcome.message);
}
