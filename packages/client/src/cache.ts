// A data-key cache in the manner of the AWS Encryption SDK's caching materials manager: one GenerateDataKey
// serves many messages, bounded by age, by messages and by bytes. Opt-in: reusing a data key trades the
// per-message KMS call (and its audit row) for a wider blast radius if that key leaks. Safe for GCM because
// every message derives its own key from the data key and a random message id (FORMAT.md).
import type { DataKeyLease, DataKeySource } from "./data-keys";
import type { EncryptionContext } from "./format";
import { encodeContext } from "./format";

export interface DataKeyCacheOptions {
  /** How long a data key may be handed out after it was generated. */
  maxAgeMs: number;
  /** Messages one data key may encrypt. Default 2^32 (the AWS SDK's default). */
  maxMessages?: number;
  /**
   * Plaintext bytes one data key may encrypt. Checked when a message starts: a message that starts under the
   * bound may carry the key past it by at most its own length. Default 2^62.
   */
  maxBytes?: number;
  /** Entries kept (key id + context pairs); the least recently used goes first. Default 100. */
  capacity?: number;
}

interface Entry {
  plaintext: Buffer;
  ciphertextBlob: Buffer;
  messages: number;
  bytes: number;
  timer: NodeJS.Timeout;
}

export class DataKeyCache {
  private readonly entries = new Map<string, Entry>();
  private readonly maxAgeMs: number;
  private readonly maxMessages: number;
  private readonly maxBytes: number;
  private readonly capacity: number;
  /** GenerateDataKey calls the cache saved (for tests and metrics). */
  hits = 0;
  misses = 0;

  constructor(options: DataKeyCacheOptions) {
    if (!(options.maxAgeMs > 0)) throw new RangeError("maxAgeMs must be positive");
    this.maxAgeMs = options.maxAgeMs;
    this.maxMessages = options.maxMessages ?? 2 ** 32;
    this.maxBytes = options.maxBytes ?? 2 ** 62;
    this.capacity = options.capacity ?? 100;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Wraps `source` so that generateDataKey is served from this cache; decryptDataKey passes through. */
  wrap(source: DataKeySource): DataKeySource {
    return {
      generateDataKey: (keyId, context) => this.lease(keyId, context, () => source.generateDataKey(keyId, context)),
      decryptDataKey: (blob, context) => source.decryptDataKey(blob, context),
    };
  }

  private async lease(keyId: string, context: EncryptionContext, generate: () => Promise<DataKeyLease>): Promise<DataKeyLease> {
    const id = `${keyId}\0${encodeContext(context).toString("base64")}`;
    let entry = this.entries.get(id);
    if (entry && (entry.messages >= this.maxMessages || entry.bytes >= this.maxBytes)) {
      this.evict(id);
      entry = undefined;
    }
    if (entry) {
      this.hits++;
      // Most recently used goes to the end of the Map's order.
      this.entries.delete(id);
      this.entries.set(id, entry);
    } else {
      this.misses++;
      const fresh = await generate();
      entry = {
        plaintext: fresh.plaintext,
        ciphertextBlob: fresh.ciphertextBlob,
        messages: 0,
        bytes: 0,
        timer: setTimeout(() => this.evict(id), this.maxAgeMs).unref(),
      };
      this.evict(id); // a concurrent miss may have filled it meanwhile
      this.entries.set(id, entry);
      while (this.entries.size > this.capacity) this.evict(this.entries.keys().next().value as string);
    }
    entry.messages++;
    const counted = entry;
    return {
      // A copy: the receiver zeroes its copy, the cache zeroes the original on eviction.
      plaintext: Buffer.from(entry.plaintext),
      ciphertextBlob: entry.ciphertextBlob,
      countBytes: (bytes) => {
        counted.bytes += bytes;
      },
    };
  }

  private evict(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    clearTimeout(entry.timer);
    entry.plaintext.fill(0);
    this.entries.delete(id);
  }

  /** Zeroes and drops every entry. */
  clear(): void {
    for (const id of [...this.entries.keys()]) this.evict(id);
  }
}
