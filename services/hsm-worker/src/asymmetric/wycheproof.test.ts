// AsymmetricVerify's primitive (verifySignature: the function the worker's Verify RPC calls) against every
// Wycheproof vector of the signature files in the issue. Messages are hashed here, as the kms-api does,
// and the digest goes through the same path as a caller's digest.
//
// P1363 files: the API takes DER only, so those vectors run through the same verifySignature with its
// dsaEncoding option ("ieee-p1363"), which exists for them.
// secp256k1 policy: high-S signatures are accepted (as OpenSSL, AWS KMS and standard ECDSA do); the
// signatures we make are always low-S. The Bitcoin file marks high-S as invalid: those vectors are counted
// apart (policyAccepted), by tcId, and every other vector of the file agrees.
import { createHash } from "node:crypto";
import { kmsResources } from "@kms/proto";
import { hex, loadVectors } from "../testing/wycheproof";
import { keyFamily } from "../key-spec";
import { parsePublicKey } from "./public-key";
import { signingScheme } from "./signing-scheme";
import type { SignInput } from "./signing-scheme";
import { verifySignature } from "./verify";
import type { VerifyOptions } from "./verify";

const { KeySpec, SigningAlgorithm } = kmsResources;

interface FileCase {
  file: string;
  spec: kmsResources.KeySpec;
  algorithm: kmsResources.SigningAlgorithm;
  options?: VerifyOptions;
  /** tcIds that break a Wycheproof rule we deliberately do not enforce (see the secp256k1 policy above). */
  policyAccepted?: number[];
}

interface Outcome {
  total: number;
  validAccepted: number;
  invalidRejected: number;
  acceptableAccepted: number[];
  acceptableRejected: number[];
  policyAccepted: number[];
  disagreements: Array<{ tcId: number; result: string; got: boolean; comment: string }>;
}

function run(c: FileCase): Outcome {
  const file = loadVectors(c.file);
  const family = keyFamily(c.spec, "key_spec");
  const scheme = signingScheme(family, c.spec, c.algorithm);
  const out: Outcome = { total: 0, validAccepted: 0, invalidRejected: 0, acceptableAccepted: [], acceptableRejected: [], policyAccepted: [], disagreements: [] };
  for (const group of file.testGroups) {
    const publicKey = parsePublicKey(hex(group.publicKeyDer), family);
    for (const t of group.tests) {
      out.total++;
      const msg = hex(t.msg);
      const input: SignInput =
        scheme.kind === "ed25519" || scheme.kind === "ml-dsa" ? { kind: "message", message: msg } : { kind: "digest", digest: createHash(scheme.hash).update(msg).digest() };
      const got = verifySignature(publicKey, scheme, input, hex(t.sig), c.options);
      if (t.result === "acceptable") (got ? out.acceptableAccepted : out.acceptableRejected).push(t.tcId);
      else if (t.result === "valid" && got) out.validAccepted++;
      else if (t.result === "invalid" && !got) out.invalidRejected++;
      else if (t.result === "invalid" && c.policyAccepted?.includes(t.tcId)) out.policyAccepted.push(t.tcId);
      else out.disagreements.push({ tcId: t.tcId, result: t.result, got, comment: t.comment });
    }
  }
  expect(out.total).toBe(file.numberOfTests);
  return out;
}

const counts = (o: Outcome) => ({
  total: o.total,
  validAccepted: o.validAccepted,
  invalidRejected: o.invalidRejected,
  acceptableAccepted: o.acceptableAccepted.length,
  acceptableRejected: o.acceptableRejected.length,
  policyAccepted: o.policyAccepted,
});

// Expected outcome per file: every valid vector accepted, every invalid one rejected. Bitcoin file: tcIds 1
// and 388 are high-S signatures (388 has s = (n+1)/2, the smallest high S), accepted by our policy.
// RSA PKCS#1 files: the one "acceptable" vector (tcId 8, DigestInfo without the NULL parameter) is
// rejected: we compare the whole encoded message with the DER DigestInfo (with NULL), as RFC 8017 §9.2
// produces it, so there is exactly one valid encoding per digest.
const CASES: Array<[FileCase, ReturnType<typeof counts>]> = [
  [{ file: "ecdsa_secp256r1_sha256_test.json", spec: KeySpec.EC_P256, algorithm: SigningAlgorithm.ECDSA_SHA_256 }, { total: 484, validAccepted: 174, invalidRejected: 310, acceptableAccepted: 0, acceptableRejected: 0, policyAccepted: [] }],
  [{ file: "ecdsa_secp256r1_sha256_p1363_test.json", spec: KeySpec.EC_P256, algorithm: SigningAlgorithm.ECDSA_SHA_256, options: { dsaEncoding: "ieee-p1363" } }, { total: 262, validAccepted: 173, invalidRejected: 89, acceptableAccepted: 0, acceptableRejected: 0, policyAccepted: [] }],
  [{ file: "ecdsa_secp384r1_sha384_test.json", spec: KeySpec.EC_P384, algorithm: SigningAlgorithm.ECDSA_SHA_384 }, { total: 504, validAccepted: 194, invalidRejected: 310, acceptableAccepted: 0, acceptableRejected: 0, policyAccepted: [] }],
  [{ file: "ecdsa_secp384r1_sha384_p1363_test.json", spec: KeySpec.EC_P384, algorithm: SigningAlgorithm.ECDSA_SHA_384, options: { dsaEncoding: "ieee-p1363" } }, { total: 280, validAccepted: 193, invalidRejected: 87, acceptableAccepted: 0, acceptableRejected: 0, policyAccepted: [] }],
  [{ file: "ecdsa_secp256k1_sha256_test.json", spec: KeySpec.EC_P256K, algorithm: SigningAlgorithm.ECDSA_SHA_256 }, { total: 476, validAccepted: 168, invalidRejected: 308, acceptableAccepted: 0, acceptableRejected: 0, policyAccepted: [] }],
  [{ file: "ecdsa_secp256k1_sha256_bitcoin_test.json", spec: KeySpec.EC_P256K, algorithm: SigningAlgorithm.ECDSA_SHA_256, policyAccepted: [1, 388] }, { total: 463, validAccepted: 162, invalidRejected: 299, acceptableAccepted: 0, acceptableRejected: 0, policyAccepted: [1, 388] }],
  [{ file: "ed25519_test.json", spec: KeySpec.ED25519, algorithm: SigningAlgorithm.ED25519 }, { total: 151, validAccepted: 88, invalidRejected: 63, acceptableAccepted: 0, acceptableRejected: 0, policyAccepted: [] }],
  [{ file: "rsa_pss_2048_sha256_mgf1_32_test.json", spec: KeySpec.RSA_2048, algorithm: SigningAlgorithm.RSA_PSS_SHA_256 }, { total: 108, validAccepted: 63, invalidRejected: 45, acceptableAccepted: 0, acceptableRejected: 0, policyAccepted: [] }],
  [{ file: "rsa_pss_3072_sha256_mgf1_32_test.json", spec: KeySpec.RSA_3072, algorithm: SigningAlgorithm.RSA_PSS_SHA_256 }, { total: 108, validAccepted: 63, invalidRejected: 45, acceptableAccepted: 0, acceptableRejected: 0, policyAccepted: [] }],
  [{ file: "rsa_pss_4096_sha256_mgf1_32_test.json", spec: KeySpec.RSA_4096, algorithm: SigningAlgorithm.RSA_PSS_SHA_256 }, { total: 108, validAccepted: 63, invalidRejected: 45, acceptableAccepted: 0, acceptableRejected: 0, policyAccepted: [] }],
  [{ file: "rsa_signature_2048_sha256_test.json", spec: KeySpec.RSA_2048, algorithm: SigningAlgorithm.RSA_PKCS1_SHA_256 }, { total: 259, validAccepted: 9, invalidRejected: 249, acceptableAccepted: 0, acceptableRejected: 1, policyAccepted: [] }],
  [{ file: "rsa_signature_3072_sha256_test.json", spec: KeySpec.RSA_3072, algorithm: SigningAlgorithm.RSA_PKCS1_SHA_256 }, { total: 259, validAccepted: 8, invalidRejected: 250, acceptableAccepted: 0, acceptableRejected: 1, policyAccepted: [] }],
];

describe("Wycheproof signature vectors through verifySignature", () => {
  it.each(CASES.map(([c, expected]) => [c.file, c, expected] as const))("%s", (_file, c, expected) => {
    const outcome = run(c);
    expect(outcome.disagreements).toEqual([]);
    expect(counts(outcome)).toEqual(expected);
  });
});
