// The exit status of `kms`, from what went wrong. Scripts branch on these (README: "Client SDK and CLI").
import { status } from "@grpc/grpc-js";
import { IntegrityError, KmsClientError, StreamFormatError } from "@kms/client";

export const EXIT = {
  OK: 0,
  /** Bad flags or arguments, an unreadable input file. */
  USAGE: 1,
  /** NOT_FOUND: no such key, alias or key version. */
  NOT_FOUND: 2,
  /** INVALID_ARGUMENT / OUT_OF_RANGE, bad or tampered ciphertext, a signature or audit log that does not verify. */
  INVALID: 3,
  /** FAILED_PRECONDITION (disabled, pending deletion, wrong usage), PERMISSION_DENIED, UNAUTHENTICATED, ALREADY_EXISTS. */
  REFUSED: 4,
  /** UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, an answer corrupted on the way (CRC32C): try again later. */
  UNAVAILABLE: 5,
  /** Anything else: INTERNAL, UNIMPLEMENTED, an unexpected local failure. */
  OTHER: 6,
} as const;

/** A mistake in how `kms` was called, found after the argument parser accepted it. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** A check the user asked for came out negative (signature invalid, audit log broken): not a failure of the tool. */
export class VerificationFailed extends Error {
  override readonly name = "VerificationFailed";
}

/** A command that ran another program and ends with its exit code (it has reported for itself). */
export class ExitWith extends Error {
  override readonly name = "ExitWith";
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof ExitWith) return err.code;
  if (err instanceof UsageError) return EXIT.USAGE;
  if (err instanceof StreamFormatError || err instanceof VerificationFailed) return EXIT.INVALID;
  if (err instanceof IntegrityError) return EXIT.UNAVAILABLE;
  if (err instanceof KmsClientError) {
    switch (err.code) {
      case status.NOT_FOUND:
        return EXIT.NOT_FOUND;
      case status.INVALID_ARGUMENT:
      case status.OUT_OF_RANGE:
        return EXIT.INVALID;
      case status.FAILED_PRECONDITION:
      case status.PERMISSION_DENIED:
      case status.UNAUTHENTICATED:
      case status.ALREADY_EXISTS:
        return EXIT.REFUSED;
      case status.UNAVAILABLE:
      case status.DEADLINE_EXCEEDED:
      case status.RESOURCE_EXHAUSTED:
        return EXIT.UNAVAILABLE;
      default:
        return EXIT.OTHER;
    }
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ENOENT" || code === "EACCES" || code === "EISDIR" || code === "ENOTDIR") return EXIT.USAGE;
  return EXIT.OTHER;
}
