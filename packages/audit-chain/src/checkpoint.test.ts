import { generateKeyPairSync, sign } from "node:crypto";
import { checkpointFromJson, checkpointKeyId, checkpointPayload, checkpointToJson, verifyCheckpoint } from "./checkpoint";
import type { SignedCheckpoint } from "./checkpoint";
import { ChainVerifier, GENESIS_HASH, chainRows } from "./index";

const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const spki = publicKey.export({ type: "spki", format: "der" });

const rows = chainRows(
  { sequence: 0, hash: GENESIS_HASH },
  Array.from({ length: 6 }, (_, i) => ({
    time: new Date(Date.UTC(2026, 0, 1, 0, 0, i)),
    requestId: `r${i}`,
    principal: "p",
    operation: "Encrypt",
    keyId: "",
    keyVersionId: "",
    resultCode: "OK",
    errorCode: "",
    encryptionContext: {},
  })),
);

function signed(sequence: number, headHash: Buffer): SignedCheckpoint {
  const c = { sequence, headHash, time: new Date(Date.UTC(2026, 0, 2)) };
  return { ...c, keyId: checkpointKeyId(spki), signature: sign("sha256", checkpointPayload(c), privateKey) };
}

function verify(checkpoint: SignedCheckpoint, upTo = rows.length) {
  const v = new ChainVerifier(undefined, checkpoint);
  for (const r of rows.slice(0, upTo)) if (!v.add(r)) break;
  return v.result({ sequence: upTo, hash: rows[upTo - 1]?.hash ?? GENESIS_HASH });
}

describe("signed checkpoints", () => {
  const good = signed(4, rows[3]!.hash);

  it("verify with their key, in DER or PEM, and not after any field changed", () => {
    expect(verifyCheckpoint(good, spki)).toBe(true);
    expect(verifyCheckpoint(good, publicKey.export({ type: "spki", format: "pem" }).toString())).toBe(true);
    expect(verifyCheckpoint({ ...good, sequence: 5 }, spki)).toBe(false);
    expect(verifyCheckpoint({ ...good, headHash: rows[4]!.hash }, spki)).toBe(false);
    expect(verifyCheckpoint({ ...good, time: new Date(good.time.getTime() + 1) }, spki)).toBe(false);
    expect(verifyCheckpoint({ ...good, signature: Buffer.alloc(8) }, spki)).toBe(false);
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "der" });
    expect(verifyCheckpoint(good, other)).toBe(false);
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ type: "spki", format: "der" });
    expect(verifyCheckpoint(good, rsa)).toBe(false);
  });

  it("round-trip through their JSON form, which names a bad field", () => {
    expect(checkpointFromJson(JSON.parse(JSON.stringify(checkpointToJson(good))))).toEqual(good);
    expect(() => checkpointFromJson({ ...checkpointToJson(good), headHash: "xyz" })).toThrow("checkpoint.headHash: must be 64 hex digits");
    expect(() => checkpointFromJson({ ...checkpointToJson(good), sequence: 0 })).toThrow("checkpoint.sequence: must be a positive integer");
  });

  it("pass a chain that reaches them with the same hash, and fail one cut, wiped or rewritten", () => {
    expect(verify(good)).toEqual({ verifiedCount: 6, ok: true, firstBadSequence: 0, problem: "", checkpointMatched: true });
    expect(verify(good, 4)).toMatchObject({ ok: true, checkpointMatched: true });
    expect(verify(good, 2)).toEqual({
      verifiedCount: 2,
      ok: false,
      firstBadSequence: 3,
      problem: "the chain ends at 2, before the signed checkpoint at 4",
      checkpointMatched: false,
    });
    expect(verify(good, 0)).toMatchObject({ ok: false, firstBadSequence: 1, problem: "the chain ends at 0, before the signed checkpoint at 4" });
    // A consistent chain rebuilt from the genesis: its row 4 is another row.
    expect(verify(signed(4, rows[2]!.hash))).toMatchObject({ ok: false, firstBadSequence: 4, problem: "row 4 is not the one the signed checkpoint names" });
  });
});
