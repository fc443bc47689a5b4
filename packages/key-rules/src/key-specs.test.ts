import { kmsResources } from "@kms/proto";
import { allowedUsages, checkEncryptionAlgorithm, CREATABLE_SPECS, DATA_KEY_PAIR_SPECS, dataKeyPairFamily, KEY_SPECS, specsOfKind } from "./index";

const { KeySpec, KeyUsage, EncryptionAlgorithm } = kmsResources;

describe("the key-spec capability table", () => {
  it("holds every spec this release creates, and nothing else", () => {
    expect([...KEY_SPECS.keys()].sort()).toEqual([...CREATABLE_SPECS].sort());
  });

  it("groups specs by family kind in table order", () => {
    expect(specsOfKind("aes")).toEqual([KeySpec.AES_256, KeySpec.AES_128]);
    expect(specsOfKind("ec", "ed25519")).toEqual([KeySpec.EC_P256, KeySpec.EC_P384, KeySpec.EC_P256K, KeySpec.ED25519]);
  });

  it("gives the usages and the OAEP sizes kms-api checks", () => {
    expect(allowedUsages(KeySpec.RSA_3072)).toEqual([KeyUsage.SIGN_VERIFY, KeyUsage.ENCRYPT_DECRYPT]);
    expect(allowedUsages(KeySpec.UNSPECIFIED)).toEqual([]);
    expect(checkEncryptionAlgorithm(KeySpec.RSA_2048, EncryptionAlgorithm.RSAES_OAEP_SHA_256)).toEqual({ maxPlaintextBytes: 256 - 64 - 2 });
    expect(checkEncryptionAlgorithm(KeySpec.RSA_4096, EncryptionAlgorithm.RSAES_OAEP_SHA_1)).toEqual({ maxPlaintextBytes: 512 - 40 - 2 });
  });
});

describe("data key pair specs", () => {
  it("are the RSA and EC specs, each with its family", () => {
    expect(DATA_KEY_PAIR_SPECS).toEqual([KeySpec.RSA_2048, KeySpec.RSA_3072, KeySpec.RSA_4096, KeySpec.EC_P256, KeySpec.EC_P384, KeySpec.EC_P256K]);
    expect(dataKeyPairFamily(KeySpec.RSA_3072)).toEqual({ kind: "rsa", bits: 3072 });
    expect(dataKeyPairFamily(KeySpec.EC_P256K)).toEqual({ kind: "ec", curve: "secp256k1" });
  });

  it("refuse every other spec, naming the field", () => {
    expect(() => dataKeyPairFamily(KeySpec.UNSPECIFIED)).toThrow(/^key_pair_spec: is required: one of KEY_SPEC_RSA_2048, /);
    for (const spec of [KeySpec.AES_256, KeySpec.HMAC_SHA256, KeySpec.ED25519]) {
      expect(() => dataKeyPairFamily(spec, "KeyPairSpec")).toThrow(/^KeyPairSpec: KEY_SPEC_\w+ is not a data key pair spec/);
    }
  });
});
