// The load generator, run as its own process so that its CPU does not share an event loop with the
// runner. It sends one pre-encoded request over and over with grpc-js directly (raw Buffer
// serializers: no protobuf work on the client side), keeps a fixed number of calls in flight, and
// prints one JSON line: LoadResult.
import { Client, credentials, status } from "@grpc/grpc-js";
import type { ServiceError } from "@grpc/grpc-js";

export interface LoadArgs {
  /** host:port of the server. */
  address: string;
  /** Full method path, e.g. "/kms.v1.KeyManagementService/Encrypt". */
  path: string;
  /** The encoded request message, base64. */
  request: string;
  /** Calls in flight at all times. */
  concurrency: number;
  /** HTTP/2 connections the calls are spread over. */
  channels: number;
  warmupSeconds: number;
  seconds: number;
  /** Per-call deadline. */
  deadlineMs: number;
  /**
   * A fixed number of calls instead of a time window (the latency rows at 1 in flight): `warmupCalls`
   * unmeasured, then `calls` measured. `seconds` and `warmupSeconds` are then ignored.
   */
  calls?: number;
  warmupCalls?: number;
}

export interface LoadResult {
  /** Calls that completed successfully inside the measured window. */
  ops: number;
  /** Length of the measured window. */
  seconds: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Calls that failed inside the measured window. */
  errors: number;
}

const identity = (bytes: Buffer) => bytes;

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? NaN;
}

export async function runLoad(args: LoadArgs): Promise<LoadResult> {
  const request = Buffer.from(args.request, "base64");
  // A local subchannel pool gives each Client its own connection; grpc-js would otherwise share one.
  const clients = Array.from(
    { length: args.channels },
    () => new Client(args.address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }),
  );
  await Promise.all(
    clients.map((c) => new Promise<void>((resolve, reject) => c.waitForReady(Date.now() + 5000, (e) => (e ? reject(e) : resolve())))),
  );

  const NS = 1_000_000_000n;
  const counted = args.calls !== undefined;
  const warmupCalls = args.warmupCalls ?? 0;
  const start = process.hrtime.bigint();
  const measureFrom = start + BigInt(Math.round(args.warmupSeconds * 1e9));
  const measureUntil = measureFrom + BigInt(Math.round(args.seconds * 1e9));
  const latenciesNs: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let sentCount = 0;
  // By count, the window runs from the first measured call's send to the last one's answer.
  let measuredFrom = start;
  let lastDone = start;

  // One loop per in-flight slot: send, wait, record, send again, until the window closes.
  const slot = (client: Client) =>
    new Promise<void>((resolve) => {
      const send = () => {
        const sent = process.hrtime.bigint();
        if (counted ? sentCount >= warmupCalls + args.calls! : sent >= measureUntil) return resolve();
        const index = sentCount++;
        if (counted && index === warmupCalls) measuredFrom = sent;
        client.makeUnaryRequest(args.path, identity, identity, request, { deadline: Date.now() + args.deadlineMs }, (err: ServiceError | null) => {
          const done = process.hrtime.bigint();
          // Count by completion time: a call that ends inside the window is work done in the window.
          const inWindow = counted ? index >= warmupCalls : done >= measureFrom && done < measureUntil;
          if (inWindow) {
            lastDone = done;
            if (err) {
              errors++;
              firstError ??= `${status[err.code] ?? err.code}: ${err.details}`;
            } else {
              latenciesNs.push(Number(done - sent));
            }
          }
          send();
        });
      };
      send();
    });

  await Promise.all(Array.from({ length: args.concurrency }, (_, i) => slot(clients[i % clients.length]!)));
  for (const c of clients) c.close();

  if (firstError !== undefined) console.error(`load: ${errors} errors, first: ${firstError}`);
  const sorted = Float64Array.from(latenciesNs).sort();
  const seconds = Number(counted ? lastDone - measuredFrom : measureUntil - measureFrom) / Number(NS);
  return {
    ops: sorted.length,
    seconds,
    opsPerSec: sorted.length / seconds,
    p50Ms: percentile(sorted, 50) / 1e6,
    p99Ms: percentile(sorted, 99) / 1e6,
    errors,
  };
}

if (require.main === module) {
  runLoad(JSON.parse(process.argv[2] ?? "") as LoadArgs).then(
    (result) => {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      console.error(`load: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
