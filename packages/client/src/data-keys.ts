// Where the streams get data keys from: the KMS (GenerateDataKey / Decrypt), optionally through a cache.
import type { EncryptionContext } from "./format";

/** A data key handed to one message. `plaintext` belongs to the receiver, which zeroes it after use. */
export interface DataKeyLease {
  plaintext: Buffer;
  /** The KMS ciphertext blob of the same key, stored in the message header. */
  ciphertextBlob: Buffer;
  /** Counts plaintext bytes encrypted under the key (a cache enforces its byte bound with it). */
  countBytes(bytes: number): void;
}

export interface DataKeySource {
  /** A 256-bit data key under the CMK `keyId`, bound to `context`. */
  generateDataKey(keyId: string, context: EncryptionContext): Promise<DataKeyLease>;
  /** The plaintext of a data key blob; the caller zeroes it after use. */
  decryptDataKey(ciphertextBlob: Buffer, context: EncryptionContext): Promise<Buffer>;
}
