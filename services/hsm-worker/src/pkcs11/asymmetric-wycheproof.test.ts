// The HSM paths of AsymmetricDecrypt (hsmOaepDecrypt: CKM_RSA_X_509 in SoftHSM2 + the worker's
// constant-time OAEP decoding) and of GenerateMac / VerifyMac (hsmMac: CKM_SHA*_HMAC + macMatches) against
// every Wycheproof RSA-OAEP-SHA-256 and HMAC vector. Each vector key is loaded as a session object.
import * as pkcs11js from "pkcs11js";
import { ErrorCode, KmsError } from "@kms/errors";
import { tallyHmac } from "../testing/hmac-vectors";
import { createRsaDecryptionKey, openTestSession } from "../testing/pkcs11-session";
import type { TestSession } from "../testing/pkcs11-session";
import { hex, loadVectors } from "../testing/wycheproof";
import { hsmMac } from "./hmac";
import { hsmOaepDecrypt } from "./rsa";
import { hasCode } from "./errors";

jest.setTimeout(120_000);

let testSession: TestSession;
let lib: pkcs11js.PKCS11;
let session: pkcs11js.Handle;

beforeAll(() => {
  testSession = openTestSession("asym-wycheproof-test");
  ({ lib, session } = testSession);
});

afterAll(() => testSession.close());

/** Big-endian integer without leading zero bytes, as PKCS#11 takes it. */
function integer(hexValue: string | undefined): Buffer {
  const b = hex(hexValue);
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

function importRsaKey(c: Record<string, string>): pkcs11js.Handle {
  return createRsaDecryptionKey(lib, session, {
    modulus: integer(c.modulus),
    publicExponent: integer(c.publicExponent),
    privateExponent: integer(c.privateExponent),
    prime1: integer(c.prime1),
    prime2: integer(c.prime2),
    exponent1: integer(c.exponent1),
    exponent2: integer(c.exponent2),
    coefficient: integer(c.coefficient),
  });
}

describe("Wycheproof RSA-OAEP-SHA-256, HSM raw RSA + worker OAEP decoding", () => {
  it.each([
    ["rsa_oaep_2048_sha256_mgf1sha256_test.json", { total: 37, valid: 18, invalid: 19 }],
    ["rsa_oaep_3072_sha256_mgf1sha256_test.json", { total: 37, valid: 18, invalid: 19 }],
    ["rsa_oaep_4096_sha256_mgf1sha256_test.json", { total: 37, valid: 18, invalid: 19 }],
  ])("%s: every vector agrees; every failure is the one invalidCiphertext error", async (name, expected) => {
    const file = loadVectors(name);
    const seen = { total: 0, valid: 0, invalid: 0 };
    const disagreements: Array<{ tcId: number; what: string }> = [];
    for (const group of file.testGroups) {
      const key = importRsaKey(group.privateKey ?? {});
      for (const t of group.tests) {
        seen.total++;
        let plaintext: Buffer | undefined;
        try {
          plaintext = await hsmOaepDecrypt(lib, session, key, "sha256", hex(t.ct), group.keySize / 8, hex(t.label));
        } catch (err) {
          if (!(err instanceof KmsError && err.code === ErrorCode.InvalidCiphertext)) {
            disagreements.push({ tcId: t.tcId, what: String(err) });
            continue;
          }
        }
        if (t.result === "valid" && plaintext?.equals(hex(t.msg))) seen.valid++;
        else if (t.result === "invalid" && plaintext === undefined) seen.invalid++;
        else disagreements.push({ tcId: t.tcId, what: plaintext === undefined ? "rejected" : "decrypted" });
      }
      lib.C_DestroyObject(session, key);
    }
    expect(disagreements).toEqual([]);
    expect(seen).toEqual(expected);
  });
});

describe("Wycheproof HMAC, HSM CKM_SHA*_HMAC + macMatches", () => {
  // SoftHSM refuses HMAC keys shorter than the hash output (CKR_KEY_SIZE_RANGE): the 3 + 3 vectors per file
  // with such keys are counted as keyRefused. Our HMAC keys are always hash-length, so the API never meets it.
  it.each([
    ["hmac_sha256_test.json", "sha256"],
    ["hmac_sha384_test.json", "sha384"],
    ["hmac_sha512_test.json", "sha512"],
  ] as const)("%s: every vector agrees", async (name, hash) => {
    const macs = new Map<number, Buffer | undefined>();
    // hsmMac is asynchronous and tallyHmac is not: compute every MAC first, by tcId.
    for (const group of loadVectors(name).testGroups) {
      for (const t of group.tests) {
        const key = lib.C_CreateObject(session, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
          { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
          { type: pkcs11js.CKA_TOKEN, value: false },
          { type: pkcs11js.CKA_SENSITIVE, value: true },
          { type: pkcs11js.CKA_SIGN, value: true },
          { type: pkcs11js.CKA_VALUE, value: hex(t.key) },
        ]);
        try {
          macs.set(t.tcId, await hsmMac(lib, session, key, hash, hex(t.msg)));
        } catch (err) {
          if (!hasCode(err, pkcs11js.CKR_KEY_SIZE_RANGE)) throw err;
          macs.set(t.tcId, undefined);
        } finally {
          lib.C_DestroyObject(session, key);
        }
      }
    }
    const out = tallyHmac(name, hash, (t) => macs.get(t.tcId));
    expect(out).toEqual({ full: 84, truncated: 84, keyRefused: 6, disagreements: [] });
  });
});
