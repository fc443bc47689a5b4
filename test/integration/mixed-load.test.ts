// Mixed load with a final sweep: nothing acknowledged is lost, nothing decrypts to other bytes, no call
// fails. In CI it runs 30 s; `npm run soak` runs this same file with KMS_SOAK=1 for KMS_SOAK_MINUTES
// (default 30), printing the running figures every minute.
import { MixedLoad, summary } from "../reliability/mixed-load";
import type { MixedLoadReport } from "../reliability/mixed-load";
import { startStack } from "../harness";
import type { Stack } from "../harness";

const SOAK = process.env.KMS_SOAK === "1";
const SECONDS = SOAK ? Math.round(Number(process.env.KMS_SOAK_MINUTES || 30) * 60) : 30;
// The sweep decrypts every acknowledged ciphertext afterwards (about half the calls), so allow 3× the run.
jest.setTimeout((SECONDS * 3 + 90) * 1000);

let stack: Stack;
beforeAll(async () => {
  // The per-principal rate limit (limits.test.ts's subject) must not shape this run: one principal's 16
  // clients and the sweep afterwards can pass 2,000 calls a second on a fast machine.
  stack = await startStack({ env: { KMS_RATE_LIMIT_PER_SECOND: "10000000", KMS_RATE_LIMIT_BURST: "10000000" } });
});
afterAll(async () => {
  await stack?.stop();
});

it(`${SECONDS} s of encrypt/decrypt, data keys, old decrypts and rotations by 16 clients: 0 lost, 0 mismatched`, async () => {
  let ticks = 0;
  const load = new MixedLoad({
    client: stack.client,
    durationMs: SECONDS * 1000,
    concurrency: 16,
    keyCount: 4,
    rotationRate: 0.01,
    ...(SOAK ? { onProgress: (r: MixedLoadReport) => void (++ticks % 60 === 0 && process.stdout.write(`soak ${ticks / 60} min: ${summary(r)}\n`)) } : {}),
  });
  const report = await load.run();
  process.stdout.write(`mixed load (${SOAK ? "soak" : "CI"}, ${SECONDS} s): ${summary(report)}\n`);
  expect(report.unexpectedSamples).toEqual([]);
  expect({ lost: report.lost, mismatched: report.mismatched, unexpected: report.unexpected }).toEqual({ lost: 0, mismatched: 0, unexpected: 0 });
  expect(report.swept).toBe(report.acknowledgedCiphertexts);
  expect(report.acknowledgedCiphertexts).toBeGreaterThan(100);
  expect(report.rotations).toBeGreaterThan(0);
});
