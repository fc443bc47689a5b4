import { ECDH, generateKeyPairSync } from "node:crypto";
import { kmsResources } from "@kms/proto";
import { allowedKeyAgreementAlgorithms, allowedUsages, checkKeyAgreementAlgorithm, checkUsable, peerPublicKey, resolveKeyChoice } from "./index";

const { KeySpec, KeyUsage, KeyState, KeyAgreementAlgorithm, ProtectionLevel } = kmsResources;
const spki = (curve: string) => generateKeyPairSync("ec", { namedCurve: curve }).publicKey.export({ type: "spki", format: "der" });

describe("KEY_AGREEMENT keys", () => {
  it("are EC_P256 and EC_P384 (not secp256k1), at either level, with ECDH", () => {
    expect(allowedUsages(KeySpec.EC_P256)).toEqual([KeyUsage.SIGN_VERIFY, KeyUsage.KEY_AGREEMENT]);
    expect(allowedUsages(KeySpec.EC_P384)).toEqual([KeyUsage.SIGN_VERIFY, KeyUsage.KEY_AGREEMENT]);
    for (const level of [ProtectionLevel.HSM, ProtectionLevel.SOFTWARE]) {
      expect(resolveKeyChoice({ keySpec: KeySpec.EC_P384, keyUsage: KeyUsage.KEY_AGREEMENT, protectionLevel: level, origin: 0 }, true).keyUsage).toBe(KeyUsage.KEY_AGREEMENT);
    }
    for (const keySpec of [KeySpec.EC_P256K, KeySpec.ED25519, KeySpec.RSA_2048, KeySpec.AES_256, KeySpec.HMAC_SHA256]) {
      expect(() => resolveKeyChoice({ keySpec, keyUsage: KeyUsage.KEY_AGREEMENT, protectionLevel: 0, origin: 0 }, true)).toThrow(/cannot be used with key_usage KEY_USAGE_KEY_AGREEMENT/);
    }
    expect(allowedKeyAgreementAlgorithms(KeySpec.EC_P256)).toEqual([KeyAgreementAlgorithm.ECDH]);
    expect(allowedKeyAgreementAlgorithms(KeySpec.EC_P256K)).toEqual([]);
  });

  it("are for DeriveSharedSecret and GetPublicKey only; signing keys are not for DeriveSharedSecret", () => {
    const agree = { keyId: "k", keyState: KeyState.ENABLED, keyUsage: KeyUsage.KEY_AGREEMENT, keySpec: KeySpec.EC_P256 };
    expect(() => checkUsable(agree, "DeriveSharedSecret")).not.toThrow();
    expect(() => checkUsable(agree, "GetPublicKey")).not.toThrow();
    for (const op of ["AsymmetricSign", "AsymmetricVerify", "Encrypt", "GenerateMac"] as const) expect(() => checkUsable(agree, op)).toThrow(/cannot be used for/);
    expect(() => checkUsable({ ...agree, keyUsage: KeyUsage.SIGN_VERIFY }, "DeriveSharedSecret")).toThrow(/KEY_USAGE_SIGN_VERIFY\) cannot be used for DeriveSharedSecret/);
    expect(() => checkUsable({ ...agree, keyState: KeyState.DISABLED }, "DeriveSharedSecret")).toThrow(/is KEY_STATE_DISABLED/);
  });

  it("need the algorithm named", () => {
    expect(() => checkKeyAgreementAlgorithm(KeySpec.EC_P256, KeyAgreementAlgorithm.ECDH)).not.toThrow();
    expect(() => checkKeyAgreementAlgorithm(KeySpec.EC_P256, 0)).toThrow(/^key_agreement_algorithm: is required/);
    expect(() => checkKeyAgreementAlgorithm(KeySpec.EC_P256, 9)).toThrow(/^key_agreement_algorithm: unknown value 9/);
    expect(() => checkKeyAgreementAlgorithm(KeySpec.EC_P256K, KeyAgreementAlgorithm.ECDH)).toThrow(/cannot be used with KEY_SPEC_EC_P256K/);
  });
});

describe("peerPublicKey", () => {
  it("takes an uncompressed point on the key's curve", () => {
    expect(peerPublicKey(spki("prime256v1"), "P-256").asymmetricKeyType).toBe("ec");
    expect(peerPublicKey(spki("secp384r1"), "P-384").asymmetricKeyType).toBe("ec");
  });

  it("refuses everything else, naming the field", () => {
    const good = spki("prime256v1");
    const off = Buffer.from(good);
    off[off.length - 1]! ^= 1;
    const compressed = Buffer.concat([
      Buffer.from("3039301306072a8648ce3d020106082a8648ce3d030107032200", "hex"),
      ECDH.convertKey(good.subarray(26), "prime256v1", undefined, undefined, "compressed") as Buffer,
    ]);
    const identity = Buffer.from("3019301306072a8648ce3d020106082a8648ce3d03010703020000", "hex");
    // x = 0 with the prefix of a real key: no such point on P-256.
    const zeros = Buffer.concat([good.subarray(0, 27), Buffer.alloc(64)]);
    const cases: [Uint8Array, RegExp][] = [
      [off, /^public_key: is not a point on P-256$/],
      [zeros, /^public_key: is not a point on P-256$/],
      [identity, /^public_key: must be the DER SubjectPublicKeyInfo of an uncompressed P-256 point/],
      [compressed, /^public_key: must be the DER SubjectPublicKeyInfo of an uncompressed P-256 point/],
      [spki("secp384r1"), /^public_key: is a P-384 key; this key agrees on P-256 only$/],
      [spki("secp256k1"), /^public_key: must be the DER SubjectPublicKeyInfo/],
      [Buffer.concat([good, Buffer.from([0])]), /^public_key: must be the DER SubjectPublicKeyInfo/],
      [good.subarray(0, 90), /^public_key: must be the DER SubjectPublicKeyInfo/],
      [Buffer.alloc(0), /^public_key: is required/],
      [Buffer.alloc(1025), /^public_key: must be at most 1024 bytes, got 1025$/],
    ];
    for (const [bytes, message] of cases) expect(() => peerPublicKey(bytes, "P-256")).toThrow(message);
    expect(() => peerPublicKey(good, "P-384", "PublicKey")).toThrow(/^PublicKey: is a P-256 key; this key agrees on P-384 only$/);
  });
});
