// kms reencrypt-dir DIR --key KEY: re-encrypts every envelope file under DIR (recursively) under another key,
// e.g. after a key is retired. Each file is streamed (decrypt → encrypt) into a temporary file beside it
// and renamed over the original only when both directions succeeded. Files that are not envelope streams
// are left alone and counted as skipped.
import { createReadStream } from "node:fs";
import { open, readdir, stat } from "node:fs/promises";
import path from "node:path";
import { PassThrough } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Command } from "commander";
import { hasMagic } from "@kms/client";
import { handler } from "../context";
import { openOutput } from "../io";
import { printJson } from "../output";
import { keyValue } from "../parse";
import { Progress } from "../progress";

async function* walk(dir: string): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(full);
    else if (entry.isFile() && !entry.name.endsWith(".partial")) yield full;
  }
}

async function isEnvelope(file: string): Promise<boolean> {
  const handle = await open(file, "r");
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await handle.read(head, 0, 4, 0);
    return hasMagic(head.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}

export function registerReencryptDir(program: Command): void {
  program
    .command("reencrypt-dir <dir>")
    .description("re-encrypt every envelope file under a directory under another key (progress on stderr when a TTY)")
    .requiredOption("--key <key>", "the key to encrypt under from now on")
    .option("--context <key=value>", "the files' current encryption context (repeatable)", keyValue)
    .option("--new-context <key=value>", "the context to encrypt under (repeatable; default: the current one)", keyValue)
    .action(
      handler(async ({ client, json }, dir: string, opts: { key: string; context?: Record<string, string>; newContext?: Record<string, string> }) => {
        const context = opts.context ?? {};
        const newContext = opts.newContext ?? context;
        const files: { file: string; size: number }[] = [];
        let skipped = 0;
        for await (const file of walk(dir)) {
          if (await isEnvelope(file)) files.push({ file, size: (await stat(file)).size });
          else skipped++;
        }
        const progress = new Progress(files.length, files.reduce((n, f) => n + f.size, 0));
        let bytes = 0;
        try {
          for (const { file } of files) {
            const out = openOutput(file);
            const count = new PassThrough().on("data", (b: Buffer) => {
              bytes += b.length;
              progress.addBytes(b.length);
            });
            try {
              await pipeline(createReadStream(file), count, client.decryptStream(context), client.encryptStream(opts.key, newContext), out.stream);
              await out.commit();
            } catch (err) {
              await out.abort();
              throw Object.assign(err as Error, { message: `${file}: ${(err as Error).message}` });
            }
            progress.fileDone();
          }
        } finally {
          progress.finish();
        }
        if (json) printJson({ reencrypted: files.length, skipped, bytes });
        else process.stdout.write(`re-encrypted ${files.length} files (${bytes} bytes), skipped ${skipped} that are not envelope files\n`);
      }),
    );
}
