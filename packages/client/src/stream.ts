// Envelope encryption of data of any size as Node Transform streams (format: FORMAT.md). Memory stays
// bounded by about two chunks whatever the input size. Decryption releases a chunk's plaintext only after
// its tag verified, but truncation is only known at the end: treat output as unverified until the stream
// finishes without an error.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { Transform } from "node:stream";
import type { TransformCallback } from "node:stream";
import { ByteQueue } from "./byte-queue";
import type { DataKeySource } from "./data-keys";
import {
  CHUNK_HEADER_LENGTH,
  DEFAULT_CHUNK_SIZE,
  FLAG_FINAL,
  FLAG_REGULAR,
  MAX_CHUNKS,
  MAX_CHUNK_SIZE,
  MAX_HEADER_LENGTH,
  MESSAGE_ID_LENGTH,
  NONCE_PREFIX_LENGTH,
  StreamFormatError,
  TAG_LENGTH,
  chunkAad,
  chunkNonce,
  deriveMessageKey,
  encodeHeader,
  headerDigest,
  parseHeader,
} from "./format";
import type { EncryptionContext, Header } from "./format";

export interface EncryptStreamOptions {
  /** Plaintext bytes per chunk, 1 .. 16 MiB. Default 64 KiB. */
  chunkSize?: number;
}

/** Runs an async step as a Transform callback: errors go to the callback, and nothing runs after it. */
function settle(step: Promise<void>, callback: TransformCallback): void {
  step.then(
    () => callback(),
    (err: unknown) => callback(err as Error),
  );
}

export class EncryptStream extends Transform {
  private readonly queue = new ByteQueue();
  private readonly chunkSize: number;
  private started: Promise<void> | undefined;
  private messageKey: Buffer | undefined;
  private noncePrefix: Buffer | undefined;
  private digest: Buffer | undefined;
  private countBytes: (bytes: number) => void = () => {};
  private index = 0;

  constructor(
    private readonly source: DataKeySource,
    private readonly keyId: string,
    private readonly context: EncryptionContext,
    options: EncryptStreamOptions = {},
  ) {
    super();
    this.chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (!Number.isInteger(this.chunkSize) || this.chunkSize < 1 || this.chunkSize > MAX_CHUNK_SIZE) {
      throw new RangeError(`chunkSize must be 1..${MAX_CHUNK_SIZE}`);
    }
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    settle(
      (async () => {
        await this.start();
        this.queue.push(chunk);
        // Hold back up to one full chunk: only the end of input tells whether it is the final one.
        while (this.queue.length > this.chunkSize) this.seal(this.queue.take(this.chunkSize), false);
      })(),
      callback,
    );
  }

  override _flush(callback: TransformCallback): void {
    settle(
      (async () => {
        await this.start();
        this.seal(this.queue.take(this.queue.length), true);
        this.wipe();
      })(),
      callback,
    );
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.wipe();
    callback(err);
  }

  private start(): Promise<void> {
    this.started ??= (async () => {
      const lease = await this.source.generateDataKey(this.keyId, this.context);
      const header: Header = {
        chunkSize: this.chunkSize,
        messageId: randomBytes(MESSAGE_ID_LENGTH),
        noncePrefix: randomBytes(NONCE_PREFIX_LENGTH),
        encryptedDataKey: lease.ciphertextBlob,
        encryptionContext: this.context,
      };
      try {
        this.messageKey = deriveMessageKey(lease.plaintext, header.messageId);
      } finally {
        lease.plaintext.fill(0);
      }
      this.countBytes = (bytes) => lease.countBytes(bytes);
      this.noncePrefix = header.noncePrefix;
      const encoded = encodeHeader(header);
      this.digest = headerDigest(encoded);
      this.push(encoded);
    })();
    return this.started;
  }

  private seal(plaintext: Buffer, final: boolean): void {
    if (this.index > MAX_CHUNKS) throw new RangeError("message too long for one stream");
    const cipher = createCipheriv("aes-256-gcm", this.messageKey!, chunkNonce(this.noncePrefix!, this.index));
    cipher.setAAD(chunkAad(this.digest!, this.index, final));
    const prefix = Buffer.alloc(CHUNK_HEADER_LENGTH);
    prefix.writeUInt8(final ? FLAG_FINAL : FLAG_REGULAR, 0);
    prefix.writeUInt32BE(plaintext.length, 1);
    // Pushed in pieces rather than concatenated: one copy less per chunk.
    this.push(prefix);
    this.push(cipher.update(plaintext));
    const rest = cipher.final();
    if (rest.length > 0) this.push(rest);
    this.push(cipher.getAuthTag());
    this.countBytes(plaintext.length);
    this.index++;
  }

  private wipe(): void {
    this.messageKey?.fill(0);
    this.messageKey = undefined;
  }
}

export class DecryptStream extends Transform {
  private readonly queue = new ByteQueue();
  private header: Header | undefined;
  private messageKey: Buffer | undefined;
  private digest: Buffer | undefined;
  private index = 0;
  private finished = false;

  /** `context` must equal the one the stream was encrypted under. */
  constructor(
    private readonly source: DataKeySource,
    private readonly context: EncryptionContext,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.queue.push(chunk);
    settle(this.drain(), callback);
  }

  override _flush(callback: TransformCallback): void {
    settle(
      (async () => {
        await this.drain();
        if (this.header === undefined) throw new StreamFormatError(this.queue.length === 0 && this.index === 0 ? "empty input: not an encrypted stream" : "truncated stream: the header is incomplete");
        if (!this.finished) throw new StreamFormatError(`truncated stream: the final chunk is missing (${this.index} chunks read)`);
        this.wipe();
      })(),
      callback,
    );
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.wipe();
    callback(err);
  }

  private async drain(): Promise<void> {
    if (this.header === undefined && !(await this.readHeader())) return;
    const chunkSize = this.header!.chunkSize;
    while (this.queue.length > 0) {
      if (this.finished) throw new StreamFormatError("unexpected data after the final chunk");
      if (this.queue.length < CHUNK_HEADER_LENGTH) return;
      const prefix = this.queue.peek(CHUNK_HEADER_LENGTH);
      const flag = prefix.readUInt8(0);
      const length = prefix.readUInt32BE(1);
      if (flag !== FLAG_REGULAR && flag !== FLAG_FINAL) throw new StreamFormatError(`chunk ${this.index}: bad flag ${flag}`);
      // Regular chunks are exactly chunkSize long, so a reader never buffers more than one chunk.
      if (flag === FLAG_REGULAR ? length !== chunkSize : length > chunkSize) throw new StreamFormatError(`chunk ${this.index}: bad length ${length}`);
      if (this.queue.length < CHUNK_HEADER_LENGTH + length + TAG_LENGTH) return;
      this.queue.take(CHUNK_HEADER_LENGTH);
      const ciphertext = this.queue.take(length);
      const tag = this.queue.take(TAG_LENGTH);
      this.push(this.open(ciphertext, tag, flag === FLAG_FINAL));
    }
  }

  /** Parses the header once it is complete and unwraps the data key; false while more bytes are needed. */
  private async readHeader(): Promise<boolean> {
    const available = this.queue.peek(Math.min(this.queue.length, MAX_HEADER_LENGTH));
    const parsed = parseHeader(available);
    if (parsed === undefined) {
      if (this.queue.length >= MAX_HEADER_LENGTH) throw new StreamFormatError("header too large");
      return false;
    }
    const { header, length } = parsed;
    if (!sameContext(header.encryptionContext, this.context)) {
      throw new StreamFormatError("encryption context does not match the stream's");
    }
    const encoded = this.queue.take(length);
    const dataKey = await this.source.decryptDataKey(header.encryptedDataKey, header.encryptionContext);
    try {
      this.messageKey = deriveMessageKey(dataKey, header.messageId);
    } finally {
      dataKey.fill(0);
    }
    this.digest = headerDigest(encoded);
    this.header = header;
    return true;
  }

  private open(ciphertext: Buffer, tag: Buffer, final: boolean): Buffer {
    const decipher = createDecipheriv("aes-256-gcm", this.messageKey!, chunkNonce(this.header!.noncePrefix, this.index));
    decipher.setAAD(chunkAad(this.digest!, this.index, final));
    decipher.setAuthTag(tag);
    let plaintext: Buffer;
    try {
      plaintext = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
    } catch {
      throw new StreamFormatError(`chunk ${this.index} failed authentication (tampered, reordered, dropped or from another message)`);
    }
    this.index++;
    if (final) this.finished = true;
    return plaintext;
  }

  private wipe(): void {
    this.messageKey?.fill(0);
    this.messageKey = undefined;
  }
}

function sameContext(a: EncryptionContext, b: EncryptionContext): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && b[k] === a[k]);
}
