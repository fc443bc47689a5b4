// The SOFTWARE paths of AsymmetricDecrypt (softwareDecrypt) and of GenerateMac / VerifyMac (softwareMac +
// macMatches, exactly what the worker runs) against every Wycheproof RSA-OAEP-SHA-256 and HMAC vector.
import { createPrivateKey, createSecretKey } from "node:crypto";
import { ErrorCode, KmsError } from "@kms/errors";
import { tallyHmac } from "../testing/hmac-vectors";
import { hex, loadVectors } from "../testing/wycheproof";
import { softwareDecrypt, softwareMac } from "./asymmetric";

function isInvalidCiphertext(err: unknown): boolean {
  return err instanceof KmsError && err.code === ErrorCode.InvalidCiphertext;
}

describe("Wycheproof RSA-OAEP-SHA-256, softwareDecrypt", () => {
  it.each([
    ["rsa_oaep_2048_sha256_mgf1sha256_test.json", { total: 37, valid: 18, invalid: 19 }],
    ["rsa_oaep_3072_sha256_mgf1sha256_test.json", { total: 37, valid: 18, invalid: 19 }],
    ["rsa_oaep_4096_sha256_mgf1sha256_test.json", { total: 37, valid: 18, invalid: 19 }],
  ])("%s: every vector agrees; every failure is the one invalidCiphertext error", async (name, expected) => {
    const file = loadVectors(name);
    const seen = { total: 0, valid: 0, invalid: 0 };
    const disagreements: number[] = [];
    for (const group of file.testGroups) {
      const key = createPrivateKey({ key: hex(group.privateKeyPkcs8), format: "der", type: "pkcs8" });
      for (const t of group.tests) {
        seen.total++;
        let plaintext: Buffer | undefined;
        try {
          plaintext = await softwareDecrypt(key, "sha256", hex(t.ct), hex(t.label));
        } catch (err) {
          if (!isInvalidCiphertext(err)) throw err;
        }
        if (t.result === "valid" && plaintext?.equals(hex(t.msg))) seen.valid++;
        else if (t.result === "invalid" && plaintext === undefined) seen.invalid++;
        else disagreements.push(t.tcId);
      }
    }
    expect(disagreements).toEqual([]);
    expect(seen).toEqual(expected);
  });
});

describe("Wycheproof HMAC, softwareMac + macMatches", () => {
  it.each([
    ["hmac_sha256_test.json", "sha256"],
    ["hmac_sha384_test.json", "sha384"],
    ["hmac_sha512_test.json", "sha512"],
  ] as const)("%s: every vector agrees", (name, hash) => {
    const out = tallyHmac(name, hash, (t) => softwareMac(createSecretKey(hex(t.key)), hash, hex(t.msg)));
    expect(out.disagreements).toEqual([]);
    // 174 vectors: 87 with full-length tags, 87 with truncated ones (refused by VerifyMac, prefix checked).
    expect(out).toEqual({ full: 87, truncated: 87, keyRefused: 0, disagreements: [] });
  });
});
