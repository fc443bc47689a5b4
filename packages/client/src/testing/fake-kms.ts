// An in-memory stand-in for the KMS's data-key calls, for unit tests of the streams and the cache. It keeps
// every plaintext key it handed out so that tests can check they were zeroed.
import { randomBytes } from "node:crypto";
import { status } from "@grpc/grpc-js";
import type { DataKeyLease, DataKeySource } from "../data-keys";
import { KmsClientError } from "../errors";
import type { EncryptionContext } from "../format";

export class FakeKms implements DataKeySource {
  private readonly keys = new Map<string, { key: Buffer; keyId: string; context: string }>();
  readonly handedOut: Buffer[] = [];
  generated = 0;
  decrypted = 0;

  async generateDataKey(keyId: string, context: EncryptionContext): Promise<DataKeyLease> {
    this.generated++;
    const key = randomBytes(32);
    const blob = randomBytes(48);
    this.keys.set(blob.toString("hex"), { key, keyId, context: JSON.stringify(Object.entries(context).sort()) });
    const plaintext = Buffer.from(key);
    this.handedOut.push(plaintext);
    return { plaintext, ciphertextBlob: blob, countBytes: () => {} };
  }

  async decryptDataKey(ciphertextBlob: Buffer, context: EncryptionContext): Promise<Buffer> {
    this.decrypted++;
    const entry = this.keys.get(ciphertextBlob.toString("hex"));
    if (!entry || entry.context !== JSON.stringify(Object.entries(context).sort())) {
      throw new KmsClientError(status.INVALID_ARGUMENT, "ciphertext or encryption context is invalid", "InvalidCiphertext", undefined);
    }
    const plaintext = Buffer.from(entry.key);
    this.handedOut.push(plaintext);
    return plaintext;
  }
}
