// One error type for everything the server answered with a non-OK status, carrying what a caller
// branches on: the gRPC status, the service's stable kms-error-code, and the request id for support.
import { Metadata, status } from "@grpc/grpc-js";
import type { ServiceError } from "@grpc/grpc-js";

export const ERROR_CODE_KEY = "kms-error-code";
export const REQUEST_ID_KEY = "kms-request-id";

export class KmsClientError extends Error {
  override readonly name = "KmsClientError";
  constructor(
    /** gRPC status code (`status.NOT_FOUND`, ...). */
    readonly code: status,
    message: string,
    /** The service's machine-readable code from the `kms-error-code` trailer, e.g. "Forbidden.KeyNotFound". */
    readonly kmsErrorCode: string | undefined,
    /** The `kms-request-id` the service assigned to the call, when it got that far. */
    readonly requestId: string | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }

  /** The status's name, e.g. "NOT_FOUND". */
  get codeName(): string {
    return status[this.code] ?? String(this.code);
  }
}

function first(metadata: Metadata | undefined, key: string): string | undefined {
  const value = metadata?.get(key)[0];
  return typeof value === "string" ? value : undefined;
}

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === "number" && "details" in err;
}

/** A grpc-js ServiceError becomes a KmsClientError; anything else is returned as it is. */
export function fromGrpcError(err: unknown): unknown {
  if (!isServiceError(err)) return err;
  return new KmsClientError(
    err.code,
    err.details || (status[err.code] ?? "error"),
    first(err.metadata, ERROR_CODE_KEY),
    first(err.metadata, REQUEST_ID_KEY),
    { cause: err },
  );
}
