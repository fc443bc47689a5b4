// Drives a gRPC method with nghttp2's h2load: one pre-framed request body resent as fast as the server
// answers. h2load pushes a server far harder than a grpc-js client (which tops out near 5k calls/s on a
// 2-core machine). It sees HTTP statuses only, not grpc-status trailers: the runner counts gRPC errors
// from the service's audit trail instead.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface H2loadArgs {
  address: string;
  path: string;
  /** The serialized protobuf request (framed here). */
  request: Buffer;
  seconds: number;
  warmupSeconds: number;
  /** Concurrent streams on one connection. */
  streams: number;
  connections: number;
  /** Requests a second per connection (h2load --rps), instead of as fast as the server answers. */
  rps?: number;
}

export interface H2loadResult {
  opsPerSec: number;
  requests: number;
  failed: number;
}

/** gRPC length-prefixed message: flag byte 0 (uncompressed), u32 length, bytes. */
export function grpcFrame(message: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

export async function h2load(args: H2loadArgs): Promise<H2loadResult> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "kms-h2load-"));
  try {
    const body = path.join(dir, "body");
    writeFileSync(body, grpcFrame(args.request));
    const { stdout } = await run(
      "h2load",
      [
        "-c", String(args.connections),
        "-m", String(args.streams),
        "-t", "1",
        "-D", String(args.seconds),
        `--warm-up-time=${args.warmupSeconds}`,
        ...(args.rps ? [`--rps=${args.rps}`] : []),
        "-d", body,
        "-H", "content-type: application/grpc",
        "-H", "te: trailers",
        `http://${args.address}${args.path}`,
      ],
      { maxBuffer: 1 << 20 },
    );
    const rate = /finished in [\d.]+s, ([\d.]+) req\/s/.exec(stdout);
    const counts = /requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed/.exec(stdout);
    if (!rate || !counts) throw new Error(`cannot read h2load's output:\n${stdout}`);
    return { opsPerSec: Number(rate[1]), requests: Number(counts[2]), failed: Number(counts[4]) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
