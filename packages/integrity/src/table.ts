// Which kms.v1 byte fields carry a CRC32C (proto field names). The service checks and fills them
// (services/kms-api: the pipeline), the SDK sends and checks them (packages/client): one table for both.

/** The byte fields of one RPC's messages that come with a CRC32C. */
export interface ChecksumFields {
  /** Request fields checked against `<name>_crc32c`; the response's `verified_<name>_crc32c` says so. */
  readonly request: readonly string[];
  /** Response fields whose `<name>_crc32c` the service fills. */
  readonly response: readonly string[];
  /** A batch: the fields are its items' (request `items[i]`, response `results[i].response`). */
  readonly batch?: boolean;
}

const ENCRYPT: ChecksumFields = { request: ["plaintext"], response: ["ciphertext_blob"] };
const DECRYPT: ChecksumFields = { request: ["ciphertext_blob"], response: ["plaintext"] };
const GENERATE_DATA_KEY: ChecksumFields = { request: [], response: ["plaintext", "ciphertext_blob"] };

/** By RPC name. An RPC not here has no byte fields of caller data. */
export const CHECKSUM_FIELDS: Readonly<Record<string, ChecksumFields>> = {
  Encrypt: ENCRYPT,
  Decrypt: DECRYPT,
  ReEncrypt: { request: ["ciphertext_blob"], response: ["ciphertext_blob"] },
  GenerateDataKey: GENERATE_DATA_KEY,
  GenerateDataKeyWithoutPlaintext: { request: [], response: ["ciphertext_blob"] },
  BatchEncrypt: { ...ENCRYPT, batch: true },
  BatchDecrypt: { ...DECRYPT, batch: true },
  BatchGenerateDataKey: { ...GENERATE_DATA_KEY, batch: true },
  GenerateDataKeyPair: { request: [], response: ["private_key_plaintext", "private_key_ciphertext_blob", "public_key"] },
  GenerateDataKeyPairWithoutPlaintext: { request: [], response: ["private_key_ciphertext_blob", "public_key"] },
  AsymmetricSign: { request: ["digest", "message", "external_mu"], response: ["value"] },
  AsymmetricVerify: { request: ["digest", "message", "external_mu", "value"], response: [] },
  AsymmetricEncrypt: ENCRYPT,
  AsymmetricDecrypt: DECRYPT,
  GenerateMac: { request: ["message"], response: ["mac"] },
  VerifyMac: { request: ["message", "mac"], response: [] },
  GenerateRandom: { request: [], response: ["random"] },
  DeriveSharedSecret: { request: ["public_key"], response: ["shared_secret"] },
};
