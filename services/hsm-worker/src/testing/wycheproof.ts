// Test support (not built): reads the Wycheproof vector files kept in test/vectors/wycheproof (with their
// licence) and tallies results.
import { readFileSync } from "node:fs";
import path from "node:path";

const VECTORS = path.resolve(__dirname, "../../../..", "test/vectors/wycheproof");

export interface WycheproofTest {
  tcId: number;
  comment: string;
  flags: string[];
  result: "valid" | "invalid" | "acceptable";
  key: string;
  msg: string;
  ct: string;
  iv?: string;
  aad?: string;
  tag?: string;
  /** Signature files. */
  sig?: string;
  /** OAEP files. */
  label?: string;
}

export interface WycheproofGroup {
  keySize: number;
  ivSize?: number;
  tagSize?: number;
  /** Signature files: the public key as DER SubjectPublicKeyInfo (hex). */
  publicKeyDer?: string;
  /** OAEP files: the private key as PKCS#8 DER (hex) and its components. */
  privateKeyPkcs8?: string;
  privateKey?: Record<string, string>;
  sha?: string;
  mgfSha?: string;
  sLen?: number;
  tests: WycheproofTest[];
}

export interface WycheproofFile {
  algorithm: string;
  numberOfTests: number;
  testGroups: WycheproofGroup[];
}

export function loadVectors(file: string): WycheproofFile {
  return JSON.parse(readFileSync(path.join(VECTORS, file), "utf8")) as WycheproofFile;
}

export const hex = (s: string | undefined): Buffer => Buffer.from(s ?? "", "hex");

/** Per-path tally: every vector lands in exactly one bucket. */
export interface Tally {
  total: number;
  /** valid accepted with the exact output, or invalid rejected. */
  agree: number;
  /** IV or tag sizes our API does not take, refused by our own check. */
  refused: number;
  /** `acceptable` vectors, by what happened. */
  acceptableAccepted: number[];
  acceptableRejected: number[];
  /** tcIds where the result disagrees with the vector. Must be empty. */
  disagreements: Array<{ tcId: number; result: string; what: string }>;
}

export function newTally(): Tally {
  return { total: 0, agree: 0, refused: 0, acceptableAccepted: [], acceptableRejected: [], disagreements: [] };
}
