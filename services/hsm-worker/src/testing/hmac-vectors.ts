// Test support (not built): tallies a Wycheproof HMAC file through a MAC function and macMatches.
import { macMatches } from "../mac";
import { hex, loadVectors } from "./wycheproof";
import type { WycheproofTest } from "./wycheproof";

/**
 * Tallies one HMAC file through `mac`. VerifyMac takes full-length tags only: a truncated tag is never
 * valid (macMatches is false for every one), and the MAC we compute must still start with the tag of a
 * valid vector and not with the tag of an invalid one.
 */
export function tallyHmac(
  name: string,
  hash: "sha256" | "sha384" | "sha512",
  /** The full MAC of the vector's key and message, or undefined when the path refuses the key. */
  mac: (t: WycheproofTest) => Buffer | undefined,
): { full: number; truncated: number; keyRefused: number; disagreements: number[] } {
  const file = loadVectors(name);
  const out = { full: 0, truncated: 0, keyRefused: 0, disagreements: [] as number[] };
  const fullBytes = { sha256: 32, sha384: 48, sha512: 64 }[hash];
  for (const group of file.testGroups) {
    for (const t of group.tests) {
      const computed = mac(t);
      if (computed === undefined) {
        out.keyRefused++;
        continue;
      }
      const tag = hex(t.tag);
      const prefixMatches = computed.subarray(0, tag.length).equals(tag);
      const agrees = t.result === "valid" ? prefixMatches : !prefixMatches;
      if (group.tagSize === fullBytes * 8) {
        if (agrees && macMatches(computed, tag) === (t.result === "valid")) out.full++;
        else out.disagreements.push(t.tcId);
      } else if (agrees && !macMatches(computed, tag)) out.truncated++;
      else out.disagreements.push(t.tcId);
    }
  }
  expect(out.full + out.truncated + out.keyRefused + out.disagreements.length).toBe(file.numberOfTests);
  return out;
}
