// Helpers for stream tests: run bytes through a Transform and collect what comes out.
import { Readable, Writable } from "node:stream";
import type { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";

/** Feeds `input` in pieces of `pieceSize` bytes (default: all at once) and returns the output. */
export async function runThrough(transform: Transform, input: Buffer, pieceSize = input.length || 1): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for (let i = 0; i < input.length; i += pieceSize) pieces.push(input.subarray(i, i + pieceSize));
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(pieces),
    transform,
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        out.push(chunk);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}
