// Measurement, not a test: streams 1 GiB (or --bytes N) through encryptStream → decryptStream against a
// running kms-api and prints throughput and peak RSS. The point is that memory stays flat whatever the size.
//
//   node packages/client/dist/scripts/stream-1gib.js [--address host:port] [--key KEY] [--bytes N] [--chunk-size N]
import { createHash, randomBytes } from "node:crypto";
import { PassThrough, Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { parseArgs } from "node:util";
import { KmsClient } from "@kms/client";

const { values } = parseArgs({
  options: {
    address: { type: "string", default: process.env.KMS_ADDR ?? "127.0.0.1:7300" },
    key: { type: "string" },
    bytes: { type: "string", default: String(1024 ** 3) },
    "chunk-size": { type: "string" },
  },
});
const total = Number(values.bytes);
const BLOCK = 1024 * 1024;

/** `total` bytes in 1 MiB blocks: one random block with the block number stamped in, so no two are equal. */
function source(): Readable {
  const block = randomBytes(BLOCK);
  let sent = 0;
  let n = 0;
  return new Readable({
    read() {
      if (sent >= total) return void this.push(null);
      const size = Math.min(BLOCK, total - sent);
      const out = Buffer.from(block.subarray(0, size));
      out.writeUInt32BE(n++ >>> 0, 0);
      sent += size;
      this.push(out);
    },
  });
}

async function main(): Promise<void> {
  const client = new KmsClient({ address: values.address });
  const keyId = values.key ?? (await client.createKey({ description: "stream-1gib measurement" })).keyMetadata!.keyId;
  const context = { purpose: "stream-1gib" };

  let peakRss = process.memoryUsage().rss;
  const baselineRss = peakRss;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 20);

  const inputHash = createHash("sha256");
  const outputHash = createHash("sha256");
  let ciphertextBytes = 0;
  let plaintextBytes = 0;
  const tapInput = new PassThrough();
  tapInput.on("data", (b: Buffer) => inputHash.update(b));
  const countCiphertext = new PassThrough();
  countCiphertext.on("data", (b: Buffer) => (ciphertextBytes += b.length));
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      outputHash.update(chunk);
      plaintextBytes += chunk.length;
      cb();
    },
  });

  const started = process.hrtime.bigint();
  const chunkSize = values["chunk-size"] ? { chunkSize: Number(values["chunk-size"]) } : {};
  await pipeline(source(), tapInput, client.encryptStream(keyId, context, chunkSize), countCiphertext, client.decryptStream(context), sink);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  clearInterval(sampler);
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  client.close();

  const same = inputHash.digest("hex") === outputHash.digest("hex");
  const mib = (n: number) => (n / 1024 / 1024).toFixed(1);
  console.log(
    JSON.stringify(
      {
        plaintextBytes,
        ciphertextBytes,
        overheadBytes: ciphertextBytes - plaintextBytes,
        roundTripIntact: same && plaintextBytes === total,
        seconds: Number(seconds.toFixed(2)),
        throughputMiBps: Number((plaintextBytes / 1024 / 1024 / seconds).toFixed(1)),
        baselineRssMiB: Number(mib(baselineRss)),
        peakRssMiB: Number(mib(peakRss)),
        node: process.version,
      },
      null,
      2,
    ),
  );
  if (!same) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? `${err.name}: ${err.message}` : err);
  process.exit(1);
});
