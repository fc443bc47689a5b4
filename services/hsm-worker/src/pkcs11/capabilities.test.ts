import { kmsResources } from "@kms/proto";
import { chooseProfile, NATIVE, SOFTHSM2 } from "./capabilities";

describe("module capability profile", () => {
  it("is SoftHSM's when C_GetInfo names SoftHSM, native otherwise", () => {
    expect(chooseProfile({ manufacturerID: "SoftHSM".padEnd(32), libraryDescription: "Implementation of PKCS11".padEnd(32) })).toBe(SOFTHSM2);
    expect(chooseProfile({ manufacturerID: "SafeNet, Inc.", libraryDescription: "Chrystoki" })).toBe(NATIVE);
  });

  it("is the one named by KMS_PKCS11_PROFILE whatever the module says", () => {
    expect(chooseProfile({ manufacturerID: "SoftHSM", libraryDescription: "" }, "native")).toBe(NATIVE);
    expect(chooseProfile({ manufacturerID: "SafeNet, Inc.", libraryDescription: "" }, "softhsm2")).toBe(SOFTHSM2);
  });

  it("keeps SoftHSM's workarounds in one place", () => {
    expect(SOFTHSM2).toMatchObject({ oaepSha256: "raw-rsa", legacyEd25519: "seed-object", hsmUnsupportedSpecs: [kmsResources.KeySpec.ED25519, kmsResources.KeySpec.ML_DSA_44, kmsResources.KeySpec.ML_DSA_65, kmsResources.KeySpec.ML_DSA_87] });
    expect(NATIVE.oaepSha256).toBe("native");
  });
});
