// encrypt / decrypt (files or stdin/stdout) and generate-data-key.
//
// `encrypt` writes the SDK's streaming envelope format (packages/client/FORMAT.md) for input of any size;
// `--raw` calls Encrypt directly instead (at most 6144 bytes, the KMS's own blob). `decrypt` tells the two
// apart by the envelope format's magic bytes.
import { PassThrough } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Command } from "commander";
import { hasMagic } from "@kms/client";
import { kms } from "@kms/proto";
import { handler } from "../context";
import type { Ctx } from "../context";
import { UsageError } from "../exit-codes";
import { openInput, openOutput, peek, readAll } from "../io";
import type { Output } from "../io";
import { grantTokensOf, reportDryRun } from "../dry-run";
import type { CheckOptions } from "../dry-run";
import { asJson, printJson, printText } from "../output";
import { DataKeySpec, enumValue, keyValue, positiveInt } from "../parse";

const MAX_RAW_PLAINTEXT = 6144;
/** A raw KMS blob is the plaintext plus a small header; anything much larger is not one. */
const MAX_RAW_BLOB = 64 * 1024;
const MAGIC_LENGTH = 4;

interface DataOptions {
  in: string;
  out: string;
  context?: Record<string, string>;
}

/** Runs `write` into the output; the file appears only if it succeeds. */
async function intoOutput(file: string, write: (out: Output) => Promise<void>): Promise<void> {
  const out = openOutput(file);
  try {
    await write(out);
    await out.commit();
  } catch (err) {
    out.stream.destroy();
    await out.abort();
    throw err;
  }
}

function summary(ctx: Ctx, opts: DataOptions, fields: Record<string, unknown>): void {
  // With data on stdout there is no room for a summary.
  if (ctx.json && opts.out !== "-") printJson(fields);
}

export function registerDataCommands(program: Command): void {
  program
    .command("encrypt")
    .description("encrypt a file or stdin under a key (envelope streaming; any size)")
    .requiredOption("--key <key>", "key id or alias/<name>")
    .option("--in <file>", "input file, - for stdin", "-")
    .option("--out <file>", "output file, - for stdout", "-")
    .option("--context <key=value>", "encryption context entry (repeatable); needed again to decrypt", keyValue)
    .option("--chunk-size <bytes>", "plaintext bytes per chunk (default 65536)")
    .option("--raw", "one Encrypt call instead (input at most 6144 bytes): the KMS's own ciphertext blob")
    .option("--dry-run", "with --raw: check only (authorization, key state, input); nothing is encrypted; exit 0 if it would succeed")
    .option("--grant-token <token>", "with --raw: a grant token (repeatable)", (v: string, p: string[] = []) => [...p, v])
    .action(
      handler(async (ctx, opts: DataOptions & CheckOptions & { key: string; chunkSize?: string; raw?: boolean }) => {
        const context = opts.context ?? {};
        if ((opts.dryRun || opts.grantToken) && !opts.raw) throw new UsageError("--dry-run and --grant-token need --raw (one Encrypt call)");
        if (opts.raw) {
          const plaintext = await readAll(openInput(opts.in), MAX_RAW_PLAINTEXT).catch((err: unknown) => {
            throw err instanceof RangeError ? new UsageError(`--raw takes at most ${MAX_RAW_PLAINTEXT} bytes; drop --raw for larger input`) : err;
          });
          const request = { keyId: opts.key, plaintext, encryptionContext: context, ...grantTokensOf(opts) };
          if (opts.dryRun) {
            try {
              return await reportDryRun(ctx.client, ctx.json, "encrypt", request);
            } finally {
              plaintext.fill(0);
            }
          }
          const res = await ctx.client.encrypt(request);
          plaintext.fill(0);
          await intoOutput(opts.out, async (out) => {
            await pipeline([Buffer.from(res.ciphertextBlob)], out.stream);
          });
          summary(ctx, opts, { keyId: res.keyId, keyVersionId: res.keyVersionId, format: "raw", ciphertextBytes: res.ciphertextBlob.length });
          return;
        }
        const chunkSize = opts.chunkSize ? { chunkSize: positiveInt("--chunk-size", opts.chunkSize) } : {};
        let bytesIn = 0;
        let bytesOut = 0;
        const countIn = new PassThrough().on("data", (b: Buffer) => (bytesIn += b.length));
        const countOut = new PassThrough().on("data", (b: Buffer) => (bytesOut += b.length));
        await intoOutput(opts.out, (out) => pipeline(openInput(opts.in), countIn, ctx.client.encryptStream(opts.key, context, chunkSize), countOut, out.stream));
        summary(ctx, opts, { key: opts.key, format: "envelope", plaintextBytes: bytesIn, ciphertextBytes: bytesOut });
      }),
    );

  program
    .command("decrypt")
    .description("decrypt what `kms encrypt` wrote (envelope stream or raw blob)")
    .option("--in <file>", "input file, - for stdin", "-")
    .option("--out <file>", "output file, - for stdout (written as it verifies: check the exit code)", "-")
    .option("--context <key=value>", "the encryption context used to encrypt (repeatable)", keyValue)
    .action(
      handler(async (ctx, opts: DataOptions) => {
        const context = opts.context ?? {};
        const { head, stream } = await peek(openInput(opts.in), MAGIC_LENGTH);
        if (hasMagic(head)) {
          let bytesOut = 0;
          const countOut = new PassThrough().on("data", (b: Buffer) => (bytesOut += b.length));
          await intoOutput(opts.out, (out) => pipeline(stream, ctx.client.decryptStream(context), countOut, out.stream));
          summary(ctx, opts, { format: "envelope", plaintextBytes: bytesOut });
          return;
        }
        const blob = await readAll(stream, MAX_RAW_BLOB).catch((err: unknown) => {
          throw err instanceof RangeError ? new UsageError("input is neither an envelope stream nor a KMS ciphertext blob") : err;
        });
        const res = await ctx.client.decrypt({ ciphertextBlob: blob, encryptionContext: context });
        await intoOutput(opts.out, async (out) => {
          await pipeline([Buffer.from(res.plaintext)], out.stream);
        });
        res.plaintext.fill(0);
        summary(ctx, opts, { format: "raw", keyId: res.keyId, keyVersionId: res.keyVersionId, plaintextBytes: res.plaintext.length });
      }),
    );

  program
    .command("generate-data-key")
    .description("make a data key under a key: plaintext and ciphertext blob, base64")
    .requiredOption("--key <key>", "key id or alias/<name>")
    .option("--spec <spec>", "AES_256 (default) or AES_128")
    .option("--bytes <n>", "a key of n bytes (1..1024) instead of --spec")
    .option("--context <key=value>", "encryption context entry (repeatable)", keyValue)
    .option("--without-plaintext", "only the ciphertext blob (GenerateDataKeyWithoutPlaintext)")
    .option("--dry-run", "check only (authorization, key state, input): no data key is made; exit 0 if it would succeed")
    .option("--grant-token <token>", "a grant token (repeatable)", (v: string, p: string[] = []) => [...p, v])
    .action(
      handler(async ({ client, json }, opts: CheckOptions & { key: string; spec?: string; bytes?: string; context?: Record<string, string>; withoutPlaintext?: boolean }) => {
        if (opts.spec && opts.bytes) throw new UsageError("give --spec or --bytes, not both");
        const request = {
          keyId: opts.key,
          encryptionContext: opts.context ?? {},
          ...(opts.bytes ? { numberOfBytes: positiveInt("--bytes", opts.bytes) } : { keySpec: enumValue(DataKeySpec, "DATA_KEY_SPEC", "--spec", opts.spec ?? "AES_256") }),
          ...grantTokensOf(opts),
        };
        if (opts.dryRun) return reportDryRun(client, json, opts.withoutPlaintext ? "generateDataKeyWithoutPlaintext" : "generateDataKey", request);
        const M = kms.KeyManagementService.method;
        const value = opts.withoutPlaintext
          ? asJson(M.generateDataKeyWithoutPlaintext.output, await client.generateDataKeyWithoutPlaintext(request))
          : asJson(M.generateDataKey.output, await client.generateDataKey(request));
        if (json) printJson(value);
        else printText(value);
      }),
    );
}
