// How a failure looks to an AWS client: the exception name (`__type`) and HTTP status, from the service's
// stable error code. One table, read from the AWS KMS model (botocore's kms/2014-11-01/service-2.json and
// @aws-sdk/client-kms): client errors 400, KMSInternalException 500, DependencyTimeoutException 503 (the
// SDKs retry both, and ThrottlingException by its name).
import { status } from "@grpc/grpc-js";
import { ErrorCode, KmsError } from "@kms/errors";

export interface AwsErrorName {
  type: string;
  httpStatus: number;
}

const client = (type: string): AwsErrorName => ({ type, httpStatus: 400 });

/** Every ErrorCode the service has; a new one without a row here fails to type-check. */
export const AWS_ERRORS: Readonly<Record<ErrorCode, AwsErrorName>> = {
  [ErrorCode.InvalidParameter]: client("ValidationException"),
  [ErrorCode.InvalidCiphertext]: client("InvalidCiphertextException"),
  [ErrorCode.KeyNotFound]: client("NotFoundException"),
  [ErrorCode.AliasNotFound]: client("NotFoundException"),
  [ErrorCode.KeyVersionNotFound]: client("NotFoundException"),
  [ErrorCode.Disabled]: client("DisabledException"),
  [ErrorCode.PendingDeletion]: client("KMSInvalidStateException"),
  [ErrorCode.PendingImport]: client("KMSInvalidStateException"),
  [ErrorCode.DeletionProtected]: client("KMSInvalidStateException"),
  [ErrorCode.KeyUsage]: client("InvalidKeyUsageException"),
  [ErrorCode.EncryptionLimit]: client("LimitExceededException"),
  [ErrorCode.HsmUnsupported]: client("UnsupportedOperationException"),
  [ErrorCode.RootKeyMismatch]: client("KMSInvalidStateException"),
  [ErrorCode.AliasExists]: client("AlreadyExistsException"),
  [ErrorCode.TooManyTags]: client("LimitExceededException"),
  [ErrorCode.InvalidImportToken]: client("InvalidImportTokenException"),
  [ErrorCode.ImportTokenExpired]: client("ExpiredImportTokenException"),
  [ErrorCode.ImportTokenUsed]: client("InvalidImportTokenException"),
  [ErrorCode.IncorrectKeyMaterial]: client("IncorrectKeyMaterialException"),
  [ErrorCode.IncorrectKey]: client("IncorrectKeyException"),
  [ErrorCode.InvalidSignature]: client("KMSInvalidSignatureException"),
  [ErrorCode.InvalidMac]: client("KMSInvalidMacException"),
  // AWS KMS has no checksum fields (its clients never send one); a mismatch is a malformed request there.
  [ErrorCode.ChecksumMismatch]: client("ValidationException"),
  [ErrorCode.GrantExists]: client("AlreadyExistsException"),
  [ErrorCode.TooManyGrants]: client("LimitExceededException"),
  [ErrorCode.GrantNotFound]: client("NotFoundException"),
  // AWS answers a dry run that would succeed with HTTP 412 DryRunOperationException.
  [ErrorCode.DryRunOperation]: { type: "DryRunOperationException", httpStatus: 412 },
  [ErrorCode.Unauthenticated]: client("UnrecognizedClientException"),
  [ErrorCode.PermissionDenied]: client("AccessDeniedException"),
  [ErrorCode.Throttled]: client("ThrottlingException"),
  [ErrorCode.Unavailable]: { type: "DependencyTimeoutException", httpStatus: 503 },
  [ErrorCode.DeadlineExceeded]: { type: "DependencyTimeoutException", httpStatus: 503 },
  [ErrorCode.Unimplemented]: client("UnsupportedOperationException"),
  [ErrorCode.Internal]: { type: "KMSInternalException", httpStatus: 500 },
};

/**
 * INVALID_ARGUMENT is one code for many AWS exceptions; the field the message names picks the narrower
 * one where AWS has it (a malformed policy, tag, alias name or marker).
 */
const INVALID_FIELD: readonly [field: RegExp, type: string][] = [
  [/^(policy|Policy):/, "MalformedPolicyDocumentException"],
  [/^(tags|Tags|tag_keys|TagKeys)\b/, "TagException"],
  [/^(alias_name|AliasName):/, "InvalidAliasNameException"],
  [/^(page_token|Marker):/, "InvalidMarkerException"],
  // Rotation of keys that cannot rotate is UnsupportedOperationException in AWS.
  [/^enable_automatic_rotation:/, "UnsupportedOperationException"],
  [/^\w+: ARN:/, "InvalidArnException"],
];

/**
 * A failed authentication as AWS names it: MissingAuthenticationTokenException (no signature),
 * IncompleteSignatureException (a malformed one), UnrecognizedClientException (unknown access key or a
 * session token), InvalidSignatureException (a signature that does not verify, or a stale date). It is
 * the pipeline's UNAUTHENTICATED, so the per-peer throttle and the aggregated refusal audit apply.
 */
export class AwsAuthError extends KmsError {
  constructor(
    readonly awsType: "MissingAuthenticationTokenException" | "IncompleteSignatureException" | "UnrecognizedClientException" | "InvalidSignatureException",
    message: string,
  ) {
    super(ErrorCode.Unauthenticated, message);
  }
}

/** The AWS exception and status of a failed call (a KmsError: the pipeline turns everything else into one). */
export function awsErrorOf(failure: KmsError): AwsErrorName {
  if (failure instanceof AwsAuthError) return client(failure.awsType);
  if (failure.code === ErrorCode.InvalidParameter) {
    const narrower = INVALID_FIELD.find(([field]) => field.test(failure.message));
    if (narrower) return client(narrower[1]);
  }
  return AWS_ERRORS[failure.code] ?? AWS_ERRORS[ErrorCode.Internal];
}

/** UnsupportedOperationException naming what this service does not have (an AWS feature, spec or algorithm). */
export function unsupported(what: string): KmsError {
  return new KmsError(ErrorCode.Unimplemented, `${what} is not supported by this service`);
}
