import { generateKeyPairSync, sign, verify } from "node:crypto";
import { lowS, rawToDer } from "./ecdsa-signature";

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const hex32 = (v: bigint) => Buffer.from(v.toString(16).padStart(64, "0"), "hex");

describe("rawToDer", () => {
  it("matches node:crypto's DER for the same signature", () => {
    for (const namedCurve of ["prime256v1", "secp384r1", "secp256k1"]) {
      const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve });
      for (let i = 0; i < 20; i++) {
        const raw = sign("sha256", Buffer.from(`m${i}`), { key: privateKey, dsaEncoding: "ieee-p1363" });
        const der = rawToDer(raw);
        expect(verify("sha256", Buffer.from(`m${i}`), { key: publicKey, dsaEncoding: "der" }, der)).toBe(true);
      }
    }
  });

  it("strips leading zeros and adds a zero byte before a set high bit", () => {
    const raw = Buffer.concat([Buffer.from("00".repeat(31) + "7f", "hex"), Buffer.from("80" + "00".repeat(31), "hex")]);
    expect(rawToDer(raw).toString("hex")).toBe(`302602017f022100${"80" + "00".repeat(31)}`);
  });
});

describe("lowS", () => {
  it("replaces s by n − s when s > n/2, and keeps the signature valid", () => {
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "secp256k1" });
    let flipped = 0;
    for (let i = 0; i < 32; i++) {
      const message = Buffer.from(`k${i}`);
      const raw = sign("sha256", message, { key: privateKey, dsaEncoding: "ieee-p1363" });
      const low = lowS(raw, "secp256k1");
      const s = BigInt(`0x${low.subarray(32).toString("hex")}`);
      expect(s <= N / 2n).toBe(true);
      if (!low.equals(raw)) flipped++;
      expect(verify("sha256", message, { key: publicKey, dsaEncoding: "ieee-p1363" }, low)).toBe(true);
    }
    expect(flipped).toBeGreaterThan(0);
  });

  it("leaves n/2 itself alone and maps n/2 + 1 to n/2", () => {
    const r = hex32(1n);
    const half = N / 2n;
    expect(lowS(Buffer.concat([r, hex32(half)]), "secp256k1")).toEqual(Buffer.concat([r, hex32(half)]));
    expect(lowS(Buffer.concat([r, hex32(half + 1n)]), "secp256k1")).toEqual(Buffer.concat([r, hex32(N - half - 1n)]));
  });
});
