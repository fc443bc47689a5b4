// The worker's ML-DSA module against NIST's ACVP known answers (test/vectors/ml-dsa): the public key a
// seed gives, in the SubjectPublicKeyInfo GetPublicKey returns, and a signature made with that key that
// verifies under it, for its own message only.
import { readFileSync } from "node:fs";
import path from "node:path";
import { privateKeyThreads } from "../software/private-key-threads";
import { mlDsaFromSeed, mlDsaPublicKeyOf, mlDsaVerify } from "./ml-dsa";
import type { MlDsaLevel } from "./ml-dsa";

interface KeyGenCase {
  tcId: number;
  parameterSet: "ML-DSA-44" | "ML-DSA-65" | "ML-DSA-87";
  seed: string;
  pk: string;
}

const VECTORS = path.resolve(__dirname, "..", "..", "..", "..", "test", "vectors", "ml-dsa", "keygen.json");
const cases = (JSON.parse(readFileSync(VECTORS, "utf8")) as { tests: KeyGenCase[] }).tests;
const levelOf = (set: KeyGenCase["parameterSet"]) => Number(set.slice("ML-DSA-".length)) as MlDsaLevel;

afterAll(() => privateKeyThreads.stop());

describe("ML-DSA against NIST ACVP keyGen vectors", () => {
  it("holds one case per parameter set", () => {
    expect(cases.map((c) => c.parameterSet)).toEqual(["ML-DSA-44", "ML-DSA-65", "ML-DSA-87"]);
  });

  it.each(cases.map((c) => [c.parameterSet, c.tcId, c] as const))("%s (tcId %d): the seed gives NIST's public key", (_set, _id, c) => {
    const level = levelOf(c.parameterSet);
    const { spki } = mlDsaFromSeed(level, Buffer.from(c.seed, "hex"));
    expect(mlDsaPublicKeyOf(spki, level)?.toString("hex").toUpperCase()).toBe(c.pk);
  });

  it.each(cases.map((c) => [c.parameterSet, c] as const))("%s: a signature by that key verifies under NIST's public key, for its message only", async (_set, c) => {
    const level = levelOf(c.parameterSet);
    const { privateKey } = mlDsaFromSeed(level, Buffer.from(c.seed, "hex"));
    const message = Buffer.from(`signed by ACVP tcId ${c.tcId}`);
    const signature = await privateKeyThreads.mlDsaSign(level, privateKey.secretKey, { kind: "message", message });
    const publicKey = Buffer.from(c.pk, "hex");
    expect(mlDsaVerify(level, publicKey, { kind: "message", message }, signature)).toBe(true);
    expect(mlDsaVerify(level, publicKey, { kind: "message", message: Buffer.from("another message") }, signature)).toBe(false);
    privateKey.wipe();
  });
});
