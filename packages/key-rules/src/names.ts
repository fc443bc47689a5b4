// Proto enum values by name, for messages that name the value ("KEY_STATE_DISABLED").
import { kmsResources } from "@kms/proto";

export type EnumSchema = { values: readonly { number: number; name: string }[] };

/** The proto name of an enum value ("KEY_SPEC_AES_256"), or its number when unknown. */
export function enumName(schema: EnumSchema, value: number): string {
  return schema.values.find((v) => v.number === value)?.name ?? String(value);
}
export const keySpecName = (v: kmsResources.KeySpec) => enumName(kmsResources.KeySpecSchema, v);
export const keyUsageName = (v: kmsResources.KeyUsage) => enumName(kmsResources.KeyUsageSchema, v);
export const keyStateName = (v: kmsResources.KeyState) => enumName(kmsResources.KeyStateSchema, v);
export const protectionLevelName = (v: kmsResources.ProtectionLevel) => enumName(kmsResources.ProtectionLevelSchema, v);

export function isKnown(schema: EnumSchema, value: number): boolean {
  return schema.values.some((v) => v.number === value && !v.name.endsWith("_UNSPECIFIED"));
}
