// hsmOaepDecrypt's SHA-256 path (raw RSA in SoftHSM2 + OAEP decoding in the worker) on raw RSA outputs
// that begin with more zero bytes than OAEP's own leading 0x00. Whether the module's output came back
// full length or shortened by its leading zeros must not change what the worker does with it: the
// decoder always gets a fresh k-byte copy and the module's buffer is always wiped (no branch on the
// length, which would tell whether the output started with zero bytes).
import { constants, generateKeyPairSync, privateDecrypt, publicEncrypt, randomBytes } from "node:crypto";
import type { KeyObject } from "node:crypto";
import * as pkcs11js from "pkcs11js";
import { createRsaDecryptionKey, openTestSession } from "../testing/pkcs11-session";
import type { TestSession } from "../testing/pkcs11-session";
import { oaepDecode } from "../asymmetric/oaep";
import { hsmOaepDecrypt } from "./rsa";

// Spy on the decoder, keeping its real behaviour: the test looks at the buffer it is given. (Hoisted
// above the imports by ts-jest.)
jest.mock("../asymmetric/oaep", () => {
  const actual = jest.requireActual<typeof import("../asymmetric/oaep")>("../asymmetric/oaep");
  return { ...actual, oaepDecode: jest.fn(actual.oaepDecode) };
});

const K = 256; // RSA-2048
let testSession: TestSession;
let publicKey: KeyObject;
let privateKey: KeyObject;
let handle: pkcs11js.Handle;

const b64 = (s: string | undefined) => Buffer.from(s!, "base64url");

beforeAll(() => {
  testSession = openTestSession("asym-oaep-zeros-test");
  ({ publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 }));
  const jwk = privateKey.export({ format: "jwk" });
  handle = createRsaDecryptionKey(testSession.lib, testSession.session, {
    modulus: b64(jwk.n),
    publicExponent: b64(jwk.e),
    privateExponent: b64(jwk.d),
    prime1: b64(jwk.p),
    prime2: b64(jwk.q),
    exponent1: b64(jwk.dp),
    exponent2: b64(jwk.dq),
    coefficient: b64(jwk.qi),
  });
});

afterAll(() => testSession.close());

/** Retries OAEP-SHA-256 encryptions until the raw RSA output (c^d mod n) begins with `zeros` zero bytes. */
function ciphertextWithLeadingZeros(plaintext: Buffer, zeros: number): { ciphertext: Buffer; tries: number } {
  for (let tries = 1; tries <= 200_000; tries++) {
    const ciphertext = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, plaintext);
    const raw = privateDecrypt({ key: privateKey, padding: constants.RSA_NO_PADDING }, ciphertext);
    if (raw.subarray(0, zeros).every((b) => b === 0)) return { ciphertext, tries };
  }
  throw new Error(`no ciphertext whose raw output starts with ${zeros} zero bytes`);
}

interface Observed {
  /** What the module's C_Decrypt returned (before the worker touched it), and that buffer afterwards. */
  returnedLength: number;
  moduleBuffer: Buffer;
}

/**
 * The session's library, its C_DecryptAsync recorded, and optionally shortened by its leading zero bytes
 * as some modules return the raw RSA result.
 */
function recordingLib(stripLeadingZeros: boolean, observed: Observed[]): pkcs11js.PKCS11 {
  const lib = testSession.lib;
  return new Proxy(lib, {
    get(target, prop, receiver) {
      if (prop !== "C_DecryptAsync") {
        // Native methods need the real object as `this`.
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      }
      return async (session: pkcs11js.Handle, data: Buffer, out: Buffer) => {
        let result = await target.C_DecryptAsync(session, data, out);
        if (stripLeadingZeros) {
          let i = 0;
          while (i < result.length - 1 && result[i] === 0) i++;
          result = result.subarray(i);
        }
        observed.push({ returnedLength: result.length, moduleBuffer: result });
        return result;
      };
    },
  });
}

describe("hsmOaepDecrypt, SHA-256 path, raw RSA output with leading zero bytes", () => {
  const plaintext = randomBytes(32);
  // OAEP's EM always starts with 0x00; a second zero byte comes once in 256 encryptions.
  let ciphertext: Buffer;
  beforeAll(() => {
    ({ ciphertext } = ciphertextWithLeadingZeros(plaintext, 2));
  });
  beforeEach(() => jest.mocked(oaepDecode).mockClear());

  it.each([
    ["returns all k bytes", false],
    ["drops the leading zero bytes", true],
  ])("decrypts when the module %s, with the same steps: a fresh k-byte copy for the decoder, the module's buffer wiped", async (_how, strip) => {
    const observed: Observed[] = [];
    const result = await hsmOaepDecrypt(recordingLib(strip, observed), testSession.session, handle, "sha256", ciphertext, K);
    expect(result.equals(plaintext)).toBe(true);
    expect(observed).toHaveLength(1);
    const [{ returnedLength, moduleBuffer }] = observed as [Observed];
    // SoftHSM2 returns k bytes; a stripping module at least two fewer.
    expect(strip ? returnedLength <= K - 2 : returnedLength === K).toBe(true);
    const calls = jest.mocked(oaepDecode).mock.calls;
    expect(calls).toHaveLength(1);
    const em = calls[0]![1];
    expect(em.length).toBe(K);
    // Old code: with a full-length output the decoder worked on the module's buffer itself (the copy
    // happened only for a short one), so the steps differed by whether the output began with zeros.
    expect(em.buffer === moduleBuffer.buffer).toBe(false);
    expect(moduleBuffer.every((b) => b === 0)).toBe(true);
    expect(em.every((b) => b === 0)).toBe(true); // the decoder wiped its copy
  });
});
