// Every AWS KMS operation by its X-Amz-Target name: the ones this service has (one module per family),
// and the rest of AWS's, which answer UnsupportedOperationException (audited under their own name).
import { create } from "@bufbuild/protobuf";
import { kms } from "@kms/proto";
import type { Operation } from "../../pipeline/operation";
import { unsupported } from "./errors";
import type { AwsEntry, AwsOperation } from "./operation";
import { empty } from "./operation";
import { ASYMMETRIC_OPERATIONS } from "./ops-asymmetric";
import { CRYPTO_OPERATIONS } from "./ops-crypto";
import { GRANT_OPERATIONS } from "./ops-grants";
import { IMPORT_OPERATIONS } from "./ops-import";
import { KEY_AGREEMENT_OPERATIONS } from "./ops-key-agreement";
import { KEY_OPERATIONS } from "./ops-keys";
import { NAME_OPERATIONS } from "./ops-names";

export const AWS_OPERATIONS: ReadonlyMap<string, AwsEntry> = new Map(
  Object.entries({ ...KEY_OPERATIONS, ...CRYPTO_OPERATIONS, ...ASYMMETRIC_OPERATIONS, ...NAME_OPERATIONS, ...IMPORT_OPERATIONS, ...GRANT_OPERATIONS, ...KEY_AGREEMENT_OPERATIONS }),
);

/** AWS KMS operations (@aws-sdk/client-kms's commands) this service does not have. */
export const UNSUPPORTED_OPERATIONS: readonly string[] = [
  "ConnectCustomKeyStore", "CreateCustomKeyStore", "Decapsulate", "DeleteCustomKeyStore",
  "DescribeCustomKeyStores", "DisconnectCustomKeyStore", "Encapsulate",
  "GetKeyLastUsage", "ListKeyRotations", "ReplicateKey",
  "UpdateCustomKeyStore", "UpdatePrimaryRegion",
];

/** An operation name as the audit row may record it: a name AWS has, or one that looks like one. */
export const OPERATION_NAME = /^[A-Z][A-Za-z0-9]{0,63}$/;

/** What a name this service does not have runs: nothing but the refusal, after authentication. */
export function unsupportedOperation(name: string): AwsOperation {
  const method = kms.KeyManagementService.method.generateRandom;
  const target: Operation = {
    name,
    method,
    handle: async () => {
      throw unsupported(`the ${name} operation`);
    },
  } as unknown as Operation;
  return { target, decode: () => create(method.input, {}), encode: empty };
}
