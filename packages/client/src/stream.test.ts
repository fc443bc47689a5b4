import { randomBytes } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { KmsClientError } from "./errors";
import { CHUNK_HEADER_LENGTH, DEFAULT_CHUNK_SIZE, StreamFormatError, TAG_LENGTH, encodeHeader, parseHeader } from "./format";
import { DecryptStream, EncryptStream } from "./stream";
import { FakeKms } from "./testing/fake-kms";
import { runThrough } from "./testing/streams";

const KEY = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
const CONTEXT = { tenant: "acme", purpose: "backup" };
const CHUNK = 16;

let kms: FakeKms;
beforeEach(() => {
  kms = new FakeKms();
});

function encrypt(plaintext: Buffer, chunkSize = CHUNK, pieceSize?: number): Promise<Buffer> {
  return runThrough(new EncryptStream(kms, KEY, CONTEXT, { chunkSize }), plaintext, pieceSize);
}

function decrypt(ciphertext: Buffer, context: Record<string, string> = CONTEXT, pieceSize?: number): Promise<Buffer> {
  return runThrough(new DecryptStream(kms, context), ciphertext, pieceSize);
}

/** Splits a stream into its header and its chunk frames. */
function frames(ciphertext: Buffer): { header: Buffer; chunks: Buffer[] } {
  const { header, length } = parseHeader(ciphertext)!;
  const chunks: Buffer[] = [];
  for (let at = length; at < ciphertext.length; ) {
    const size = CHUNK_HEADER_LENGTH + ciphertext.readUInt32BE(at + 1) + TAG_LENGTH;
    chunks.push(ciphertext.subarray(at, at + size));
    at += size;
  }
  expect(header.chunkSize).toBeGreaterThan(0);
  return { header: ciphertext.subarray(0, length), chunks };
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a failure");
}

describe("round trip", () => {
  it.each([0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK - 1, 2 * CHUNK, 2 * CHUNK + 1, 5 * CHUNK + 3])("%i bytes", async (size) => {
    const plaintext = randomBytes(size);
    const ciphertext = await encrypt(plaintext);
    // A full final chunk stays final: n bytes make max(1, ceil(n / chunk)) chunks.
    const chunkCount = Math.max(1, Math.ceil(size / CHUNK));
    const { header, chunks } = frames(ciphertext);
    expect(chunks).toHaveLength(chunkCount);
    expect(ciphertext.length).toBe(header.length + chunkCount * (CHUNK_HEADER_LENGTH + TAG_LENGTH) + size);
    chunks.forEach((c, i) => expect(c[0]).toBe(i === chunkCount - 1 ? 1 : 0));
    expect(await decrypt(ciphertext)).toEqual(plaintext);
  });

  it("does not depend on how input is split", async () => {
    const plaintext = randomBytes(3 * CHUNK + 5);
    const ciphertext = await encrypt(plaintext, CHUNK, 1);
    expect(await decrypt(ciphertext, CONTEXT, 1)).toEqual(plaintext);
    expect(await decrypt(ciphertext, CONTEXT, 7)).toEqual(plaintext);
  });

  it("uses 64 KiB chunks by default, around the boundary", async () => {
    for (const size of [DEFAULT_CHUNK_SIZE - 1, DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_SIZE + 1]) {
      const plaintext = randomBytes(size);
      const ciphertext = await runThrough(new EncryptStream(kms, KEY, CONTEXT), plaintext, 10_000);
      expect(parseHeader(ciphertext)!.header.chunkSize).toBe(DEFAULT_CHUNK_SIZE);
      expect(frames(ciphertext).chunks).toHaveLength(size > DEFAULT_CHUNK_SIZE ? 2 : 1);
      expect(await decrypt(ciphertext)).toEqual(plaintext);
    }
  });

  it("writes a self-describing header and makes one GenerateDataKey per message", async () => {
    const a = await encrypt(Buffer.from("hello"));
    const b = await encrypt(Buffer.from("hello"));
    expect(a.subarray(0, 6).toString("hex")).toBe("4b4d5353" + "01" + "01");
    const { header } = parseHeader(a)!;
    expect(header.encryptionContext).toEqual(CONTEXT);
    expect(header.chunkSize).toBe(CHUNK);
    expect(header.encryptedDataKey).toHaveLength(48);
    expect(a.equals(b)).toBe(false);
    expect(kms.generated).toBe(2);
  });

  it("zeroes every data key it was given, encrypting and decrypting", async () => {
    const ciphertext = await encrypt(randomBytes(100));
    await decrypt(ciphertext);
    expect(kms.handedOut).toHaveLength(2);
    for (const key of kms.handedOut) expect(key.equals(Buffer.alloc(32))).toBe(true);
  });
});

describe("tampering", () => {
  let plaintext: Buffer;
  let ciphertext: Buffer;
  beforeEach(async () => {
    plaintext = randomBytes(2 * CHUNK + 3); // chunks: 16, 16, 3 (final)
    ciphertext = await encrypt(plaintext);
  });

  it("detects every single bit flip", async () => {
    for (let i = 0; i < ciphertext.length; i++) {
      const tampered = Buffer.from(ciphertext);
      tampered[i]! ^= 0x01;
      const err = await failure(decrypt(tampered));
      // The data key blob is checked by the KMS; everything else by the format.
      const ok = err instanceof StreamFormatError || (err instanceof KmsClientError && err.code === status.INVALID_ARGUMENT);
      if (!ok) throw new Error(`flip at byte ${i} gave ${String(err)}`);
    }
  });

  it("names the chunk whose tag fails", async () => {
    const { header, chunks } = frames(ciphertext);
    const flipped = Buffer.from(chunks[1]!);
    flipped[CHUNK_HEADER_LENGTH + 2]! ^= 0x80;
    const err = await failure(decrypt(Buffer.concat([header, chunks[0]!, flipped, chunks[2]!])));
    expect(err).toBeInstanceOf(StreamFormatError);
    expect(err.message).toBe("chunk 1 failed authentication (tampered, reordered, dropped or from another message)");
  });

  it("detects a dropped chunk", async () => {
    const { header, chunks } = frames(ciphertext);
    const err = await failure(decrypt(Buffer.concat([header, chunks[0]!, chunks[2]!])));
    expect(err.message).toBe("chunk 1 failed authentication (tampered, reordered, dropped or from another message)");
  });

  it("detects reordered chunks", async () => {
    const { header, chunks } = frames(ciphertext);
    const err = await failure(decrypt(Buffer.concat([header, chunks[1]!, chunks[0]!, chunks[2]!])));
    expect(err.message).toBe("chunk 0 failed authentication (tampered, reordered, dropped or from another message)");
  });

  it("detects a chunk moved from another message under the same key", async () => {
    const other = frames(await encrypt(randomBytes(2 * CHUNK + 3)));
    const { header, chunks } = frames(ciphertext);
    const err = await failure(decrypt(Buffer.concat([header, chunks[0]!, other.chunks[1]!, chunks[2]!])));
    expect(err.message).toBe("chunk 1 failed authentication (tampered, reordered, dropped or from another message)");
  });

  it("detects truncation at a chunk boundary (the final chunk missing)", async () => {
    const { header, chunks } = frames(ciphertext);
    const err = await failure(decrypt(Buffer.concat([header, chunks[0]!, chunks[1]!])));
    expect(err).toBeInstanceOf(StreamFormatError);
    expect(err.message).toBe("truncated stream: the final chunk is missing (2 chunks read)");
  });

  it("detects truncation inside a chunk and inside the header", async () => {
    expect((await failure(decrypt(ciphertext.subarray(0, ciphertext.length - 1)))).message).toBe("truncated stream: the final chunk is missing (2 chunks read)");
    const { header } = frames(ciphertext);
    expect((await failure(decrypt(ciphertext.subarray(0, header.length - 1)))).message).toBe("truncated stream: the header is incomplete");
    expect((await failure(decrypt(ciphertext.subarray(0, header.length)))).message).toBe("truncated stream: the final chunk is missing (0 chunks read)");
  });

  it("detects a regular chunk turned final (a message cut short and re-flagged)", async () => {
    const { header, chunks } = frames(ciphertext);
    const refLagged = Buffer.from(chunks[1]!);
    refLagged[0] = 1;
    const err = await failure(decrypt(Buffer.concat([header, chunks[0]!, refLagged])));
    expect(err.message).toBe("chunk 1 failed authentication (tampered, reordered, dropped or from another message)");
  });

  it("refuses bad chunk lengths before reading the chunk", async () => {
    const { header, chunks } = frames(ciphertext);
    const long = Buffer.from(chunks[0]!);
    long.writeUInt32BE(1 << 30, 1);
    expect((await failure(decrypt(Buffer.concat([header, long])))).message).toBe("chunk 0: bad length 1073741824");
    const flag = Buffer.from(chunks[0]!);
    flag[0] = 7;
    expect((await failure(decrypt(Buffer.concat([header, flag])))).message).toBe("chunk 0: bad flag 7");
  });

  it("refuses data after the final chunk", async () => {
    const err = await failure(decrypt(Buffer.concat([ciphertext, Buffer.of(0)])));
    expect(err.message).toBe("unexpected data after the final chunk");
  });

  it("refuses empty input and input that is not a stream", async () => {
    expect((await failure(decrypt(Buffer.alloc(0)))).message).toBe("empty input: not an encrypted stream");
    expect((await failure(decrypt(Buffer.from("plain text, not encrypted")))).message).toBe("not an encrypted stream (bad magic)");
  });

  it("refuses another encryption context, and a header whose context was rewritten", async () => {
    expect((await failure(decrypt(ciphertext, { tenant: "acme" }))).message).toBe("encryption context does not match the stream's");
    const { header, chunks } = frames(ciphertext);
    const parsed = parseHeader(header)!.header;
    const rewritten = encodeHeader({ ...parsed, encryptionContext: { tenant: "evil", purpose: "backup" } });
    const err = await failure(decrypt(Buffer.concat([rewritten, ...chunks]), { tenant: "evil", purpose: "backup" }));
    expect(err).toBeInstanceOf(KmsClientError);
    expect((err as KmsClientError).kmsErrorCode).toBe("InvalidCiphertext");
  });

  it("refuses a header whose chunk size or nonce prefix was changed", async () => {
    const { header, chunks } = frames(ciphertext);
    const parsed = parseHeader(header)!.header;
    const noncePrefix = Buffer.from(parsed.noncePrefix);
    noncePrefix[0]! ^= 1;
    const err = await failure(decrypt(Buffer.concat([encodeHeader({ ...parsed, noncePrefix }), ...chunks])));
    expect(err.message).toBe("chunk 0 failed authentication (tampered, reordered, dropped or from another message)");
    const bigger = await failure(decrypt(Buffer.concat([encodeHeader({ ...parsed, chunkSize: CHUNK + 1 }), ...chunks])));
    expect(bigger.message).toBe("chunk 0: bad length 16");
  });
});

describe("options", () => {
  it("refuses a chunk size out of range", () => {
    expect(() => new EncryptStream(kms, KEY, {}, { chunkSize: 0 })).toThrow("chunkSize must be 1..16777216");
    expect(() => new EncryptStream(kms, KEY, {}, { chunkSize: 16 * 1024 * 1024 + 1 })).toThrow("chunkSize must be 1..16777216");
  });

  it("passes a KMS failure through as the stream's error", async () => {
    kms.generateDataKey = async () => {
      throw new KmsClientError(status.NOT_FOUND, 'key "x" not found', "Forbidden.KeyNotFound", "req-1");
    };
    const err = await failure(encrypt(Buffer.from("x")));
    expect(err).toBeInstanceOf(KmsClientError);
    expect((err as KmsClientError).code).toBe(status.NOT_FOUND);
  });
});
