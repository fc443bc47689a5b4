// GenerateDataKeyPair's rules: which specs a data key pair may have (the capability table's dataKeyPair
// rows), checked for kms-api's callers and again by the worker.
import { invalidArgument } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { KEY_SPECS } from "./key-specs";
import type { KeyFamily } from "./key-specs";
import { keySpecName } from "./names";

/** The specs a data key pair may have, in table order. */
export const DATA_KEY_PAIR_SPECS: readonly kmsResources.KeySpec[] = [...KEY_SPECS].filter(([, c]) => c.dataKeyPair).map(([spec]) => spec);

/** The family of a data key pair spec; INVALID_ARGUMENT naming `field` for any other spec. */
export function dataKeyPairFamily(spec: kmsResources.KeySpec, field = "key_pair_spec"): Extract<KeyFamily, { kind: "rsa" | "ec" }> {
  const capabilities = KEY_SPECS.get(spec);
  const family = capabilities?.family;
  if (spec === kmsResources.KeySpec.UNSPECIFIED) throw invalidArgument(field, `is required: one of ${DATA_KEY_PAIR_SPECS.map(keySpecName).join(", ")}`);
  if (!capabilities?.dataKeyPair || (family?.kind !== "rsa" && family?.kind !== "ec")) {
    throw invalidArgument(field, `${keySpecName(spec)} is not a data key pair spec: use one of ${DATA_KEY_PAIR_SPECS.map(keySpecName).join(", ")}`);
  }
  return family;
}
