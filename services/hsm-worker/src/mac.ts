// MAC comparison for VerifyMac: the length is public (the key spec's hash length), the bytes are compared
// in constant time.
import { timingSafeEqual } from "node:crypto";

export function macMatches(expected: Buffer, given: Uint8Array): boolean {
  return given.length === expected.length && timingSafeEqual(expected, given);
}
