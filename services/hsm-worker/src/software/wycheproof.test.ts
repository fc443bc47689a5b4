// The node:crypto primitives against every vector of Wycheproof's aes_gcm_test.json and aes_kwp_test.json.
import { createSecretKey } from "node:crypto";
import { ErrorCode, KmsError } from "@kms/errors";
import { hex, loadVectors, newTally } from "../testing/wycheproof";
import { openGcm, sealGcmWithIv } from "./aes-gcm";
import { kwpUnwrap, kwpWrap, UnwrapError } from "./key-wrap";

function isCode(err: unknown, code: string): boolean {
  return err instanceof KmsError && err.code === code;
}

describe("Wycheproof aes_gcm_test.json, node:crypto path", () => {
  it("agrees with every vector; non-96-bit IVs are refused by our own check", () => {
    const file = loadVectors("aes_gcm_test.json");
    const tally = newTally();
    for (const group of file.testGroups) {
      for (const t of group.tests) {
        tally.total++;
        const key = createSecretKey(hex(t.key));
        const [iv, aad, msg] = [hex(t.iv), hex(t.aad), hex(t.msg)];
        const sealed = Buffer.concat([iv, hex(t.ct), hex(t.tag)]);
        if (group.ivSize !== 96 || group.tagSize !== 128) {
          try {
            sealGcmWithIv(key, iv, msg, aad);
            tally.disagreements.push({ tcId: t.tcId, result: t.result, what: "non-96-bit IV accepted" });
          } catch (err) {
            if (isCode(err, ErrorCode.InvalidParameter)) tally.refused++;
            else tally.disagreements.push({ tcId: t.tcId, result: t.result, what: `refused with ${String(err)}` });
          }
          continue;
        }
        if (t.result === "invalid") {
          try {
            openGcm(key, sealed, aad);
            tally.disagreements.push({ tcId: t.tcId, result: t.result, what: "decrypted" });
          } catch (err) {
            if (isCode(err, ErrorCode.InvalidCiphertext)) tally.agree++;
            else tally.disagreements.push({ tcId: t.tcId, result: t.result, what: String(err) });
          }
          continue;
        }
        const encrypted = sealGcmWithIv(key, iv, msg, aad);
        const decrypted = openGcm(key, sealed, aad);
        if (encrypted.equals(sealed) && decrypted.equals(msg)) tally.agree++;
        else tally.disagreements.push({ tcId: t.tcId, result: t.result, what: "output differs" });
      }
    }
    expect(tally.disagreements).toEqual([]);
    // 316 vectors: 197 with 96-bit IVs (116 valid, 81 invalid) all agree; 119 with other IV sizes are refused.
    expect({ total: tally.total, agree: tally.agree, refused: tally.refused }).toEqual({ total: file.numberOfTests, agree: 197, refused: 119 });
  });
});

describe("Wycheproof aes_kwp_test.json, node:crypto id-aes*-wrap-pad", () => {
  it("agrees with every vector, and wrapping reproduces every valid ciphertext", () => {
    const file = loadVectors("aes_kwp_test.json");
    const tally = newTally();
    for (const group of file.testGroups) {
      for (const t of group.tests) {
        tally.total++;
        const kek = createSecretKey(hex(t.key));
        expect(kek.symmetricKeySize! * 8).toBe(group.keySize);
        let unwrapped: Buffer | undefined;
        try {
          unwrapped = kwpUnwrap(kek, hex(t.ct));
        } catch (err) {
          if (!(err instanceof UnwrapError)) throw err;
        }
        const accepted = unwrapped !== undefined && unwrapped.equals(hex(t.msg)) && kwpWrap(kek, hex(t.msg)).equals(hex(t.ct));
        if (t.result === "acceptable") (unwrapped === undefined ? tally.acceptableRejected : tally.acceptableAccepted).push(t.tcId);
        else if ((t.result === "valid") === accepted && (t.result === "valid" || unwrapped === undefined)) tally.agree++;
        else tally.disagreements.push({ tcId: t.tcId, result: t.result, what: unwrapped === undefined ? "rejected" : "unwrapped" });
      }
    }
    expect(tally.disagreements).toEqual([]);
    expect({ total: tally.total, agree: tally.agree, acceptable: tally.acceptableAccepted.length + tally.acceptableRejected.length }).toEqual({
      total: file.numberOfTests,
      agree: 254,
      acceptable: 0,
    });
  });
});
