// Input and output for data commands: a file or "-" (stdin / stdout). A file output is written beside its
// destination and renamed into place only on success, so a failed decrypt never leaves partial plaintext.
import { createReadStream, createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import type { Writable } from "node:stream";

export function openInput(file: string): Readable {
  return file === "-" ? process.stdin : createReadStream(file);
}

export interface Output {
  stream: Writable;
  /** Moves the finished file into place (no-op for stdout). */
  commit(): Promise<void>;
  /** Removes the unfinished file (no-op for stdout). */
  abort(): Promise<void>;
}

export function openOutput(file: string): Output {
  if (file === "-") return { stream: process.stdout, commit: async () => {}, abort: async () => {} };
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString("hex")}.partial`);
  const stream = createWriteStream(temp, { mode: 0o600 });
  return {
    stream,
    commit: () => rename(temp, file),
    abort: () => rm(temp, { force: true }),
  };
}

/** Reads a whole input of at most `limit` bytes (small payloads: raw KMS blobs, messages, signatures). */
export async function readAll(input: Readable, limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let length = 0;
  for await (const chunk of input) {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    length += b.length;
    if (length > limit) throw new RangeError(`input larger than ${limit} bytes`);
    parts.push(b);
  }
  return Buffer.concat(parts);
}

/**
 * Reads at least `n` bytes (or everything, if shorter) from the front of `input` and returns them with a
 * stream that yields the whole input again, those bytes included.
 */
export async function peek(input: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  const iterator = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const seen: Buffer[] = [];
  let length = 0;
  while (length < n) {
    const next = await iterator.next();
    if (next.done) break;
    seen.push(next.value);
    length += next.value.length;
  }
  const head = Buffer.concat(seen);
  async function* replay(): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head;
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      yield next.value;
    }
  }
  return { head, stream: Readable.from(replay()) };
}
