// Reading attribute values: pkcs11js returns raw bytes (CK_BBOOL is one byte, CK_ULONG is native-endian).
import type * as pkcs11js from "pkcs11js";
import { hsmCall } from "./errors";

export function readAttributes(
  lib: pkcs11js.PKCS11,
  session: pkcs11js.Handle,
  object: pkcs11js.Handle,
  types: number[],
  context: string,
): Map<number, Buffer> {
  const result = hsmCall(`C_GetAttributeValue(${context})`, () =>
    lib.C_GetAttributeValue(session, object, types.map((type) => ({ type }))),
  );
  return new Map(result.map((a) => [a.type, a.value]));
}

export function bool(value: Buffer | undefined): boolean {
  return value !== undefined && value.length > 0 && value[0] !== 0;
}

export function ulong(value: Buffer | undefined): number {
  if (value === undefined || value.length === 0) return -1;
  // CK_ULONG is 4 or 8 bytes in host order (little-endian on every platform we build for).
  return value.length >= 8 ? Number(value.readBigUInt64LE(0)) : value.readUInt32LE(0);
}
