// Mixed load with a final sweep, shared by the CI test (test/integration/mixed-load.test.ts, ~35 s), the
// fault tests (test/integration/faults.test.ts) and the soak (`npm run soak`, test/reliability/soak.ts).
//
// N clients, for a bounded time, each loop: Encrypt → Decrypt at once; GenerateDataKey; Decrypt of an
// old acknowledged ciphertext; now and then CreateKeyVersion (a rotation). Every ciphertext the service
// acknowledged is remembered with its plaintext, and at the end the sweep decrypts every one of them:
// `lost` counts those that no longer decrypt, `mismatched` those that decrypt to something else. Any
// failure whose code the caller did not allow (by default only UNAVAILABLE, retry-safe, is allowed while
// faults are injected) is `unexpected`, with a sample kept for the failure message.
import { randomBytes, randomUUID } from "node:crypto";
import { status } from "@grpc/grpc-js";
import type { ServiceError } from "@grpc/grpc-js";
import { kmsResources } from "@kms/proto";
import type { KmsClient } from "../harness";

export interface MixedLoadOptions {
  /** Client per worker loop (all may be the same). */
  client: KmsClient | (() => KmsClient);
  durationMs: number;
  concurrency: number;
  /** Keys to spread the load over (half HSM, half SOFTWARE); created at the start. */
  keyCount?: number;
  /** Chance that one loop iteration also rotates a key (CreateKeyVersion). Default 0.01. */
  rotationRate?: number;
  /** Deadline of every call. Default 15 s. */
  deadlineMs?: number;
  /** Status codes a call may fail with without counting as unexpected. Default: none. */
  allowed?: readonly status[];
  /** Called once a second with the running figures (the soak prints them). */
  onProgress?: (r: MixedLoadReport) => void;
  /** Stop early (the soak on SIGINT). */
  signal?: AbortSignal;
}

export interface Acknowledged {
  /** The "op" value in its encryption context: unique per Encrypt/GenerateDataKey, found in its audit row. */
  op: string;
  keyId: string;
  blob: Uint8Array;
  plaintext: Buffer;
  context: Record<string, string>;
}

export interface MixedLoadReport {
  operations: number;
  byOperation: Record<string, number>;
  /** Failures by gRPC status name (allowed or not). */
  failures: Record<string, number>;
  unexpected: number;
  unexpectedSamples: string[];
  acknowledgedCiphertexts: number;
  rotations: number;
  swept: number;
  lost: number;
  mismatched: number;
  elapsedMs: number;
}

const STATUS_NAMES = Object.fromEntries(Object.entries(status).map(([name, code]) => [code, name])) as Record<number, string>;

export class MixedLoad {
  readonly acknowledged: Acknowledged[] = [];
  readonly keyIds: string[] = [];
  readonly report: MixedLoadReport = {
    operations: 0,
    byOperation: {},
    failures: {},
    unexpected: 0,
    unexpectedSamples: [],
    acknowledgedCiphertexts: 0,
    rotations: 0,
    swept: 0,
    lost: 0,
    mismatched: 0,
    elapsedMs: 0,
  };
  private readonly mismatchSamples: string[] = [];

  constructor(private readonly o: MixedLoadOptions) {}

  private client(): KmsClient {
    return typeof this.o.client === "function" ? this.o.client() : this.o.client;
  }

  /** Milliseconds from now (the promise client's relative deadline). */
  private get deadline(): number {
    return this.o.deadlineMs ?? 15_000;
  }

  async createKeys(): Promise<void> {
    const n = this.o.keyCount ?? 4;
    for (let i = 0; i < n; i++) {
      const protectionLevel = i % 2 === 0 ? kmsResources.ProtectionLevel.HSM : kmsResources.ProtectionLevel.SOFTWARE;
      const res = await this.retry(() => this.client().createKey({ protectionLevel, description: `mixed load ${i}` }, { deadline: this.deadline }));
      this.keyIds.push(res.keyMetadata!.keyId);
    }
  }

  /** Runs the load for durationMs (keys are created first if there are none), then the sweep. */
  async run(): Promise<MixedLoadReport> {
    const started = Date.now();
    if (this.keyIds.length === 0) await this.createKeys();
    const until = started + this.o.durationMs;
    const ticker = this.o.onProgress
      ? setInterval(() => {
          this.report.elapsedMs = Date.now() - started; // for the running rate in summary()
          this.o.onProgress!(this.report);
        }, 1000)
      : undefined;
    try {
      await Promise.all(Array.from({ length: this.o.concurrency }, () => this.loop(until)));
    } finally {
      clearInterval(ticker);
    }
    await this.sweep();
    this.report.elapsedMs = Date.now() - started;
    return this.report;
  }

  private async loop(until: number): Promise<void> {
    while (Date.now() < until && !this.o.signal?.aborted) {
      const keyId = pick(this.keyIds);
      const r = Math.random();
      if (r < (this.o.rotationRate ?? 0.01)) {
        if (await this.call("CreateKeyVersion", () => this.client().createKeyVersion({ keyId }, { deadline: this.deadline }))) this.report.rotations++;
      } else if (r < 0.45) {
        await this.encryptThenDecrypt(keyId);
      } else if (r < 0.7) {
        await this.generateDataKey(keyId);
      } else {
        const old = this.acknowledged.length > 0 ? pick(this.acknowledged) : undefined;
        if (old) await this.decrypt(old);
        else await this.encryptThenDecrypt(keyId);
      }
    }
  }

  private async encryptThenDecrypt(keyId: string): Promise<void> {
    const op = randomUUID();
    const plaintext = randomBytes(16 + Math.floor(Math.random() * 48));
    const context = { op, tenant: `t${Math.floor(Math.random() * 8)}` };
    const res = await this.call("Encrypt", () => this.client().encrypt({ keyId, plaintext, encryptionContext: context }, { deadline: this.deadline }));
    if (!res) return;
    // A copy: the decoded field is a view that would keep the whole response buffer alive until the sweep.
    const ack = { op, keyId, blob: Buffer.from(res.ciphertextBlob), plaintext, context };
    this.acknowledged.push(ack);
    this.report.acknowledgedCiphertexts++;
    await this.decrypt(ack);
  }

  private async generateDataKey(keyId: string): Promise<void> {
    const op = randomUUID();
    const context = { op };
    const res = await this.call("GenerateDataKey", () =>
      this.client().generateDataKey({ keyId, keySpec: kmsResources.DataKeySpec.AES_256, encryptionContext: context }, { deadline: this.deadline }),
    );
    if (!res) return;
    if (res.plaintext.length !== 32) this.mismatch(`GenerateDataKey returned ${res.plaintext.length} bytes`);
    this.acknowledged.push({ op, keyId, blob: Buffer.from(res.ciphertextBlob), plaintext: Buffer.from(res.plaintext), context });
    this.report.acknowledgedCiphertexts++;
  }

  private async decrypt(ack: Acknowledged): Promise<void> {
    const res = await this.call("Decrypt", () => this.client().decrypt({ ciphertextBlob: ack.blob, encryptionContext: ack.context }, { deadline: this.deadline }));
    if (res) this.check(ack, res);
  }

  private check(ack: Acknowledged, res: { plaintext: Uint8Array; keyId: string }): void {
    if (!Buffer.from(res.plaintext).equals(ack.plaintext) || res.keyId !== ack.keyId) this.mismatch(`op ${ack.op}: decrypted to other bytes or key ${res.keyId}`);
  }

  private mismatch(what: string): void {
    this.report.mismatched++;
    if (this.mismatchSamples.length < 5) this.mismatchSamples.push(what);
    if (this.report.unexpectedSamples.length < 10) this.report.unexpectedSamples.push(`MISMATCH ${what}`);
  }

  /** One call; its failure is counted (and allowed or not). Returns undefined when it failed. */
  private async call<T>(operation: string, fn: () => Promise<T>): Promise<T | undefined> {
    this.report.operations++;
    this.report.byOperation[operation] = (this.report.byOperation[operation] ?? 0) + 1;
    try {
      return await fn();
    } catch (err) {
      const e = err as ServiceError;
      const name = typeof e.code === "number" ? (STATUS_NAMES[e.code] ?? String(e.code)) : "THROWN";
      this.report.failures[name] = (this.report.failures[name] ?? 0) + 1;
      if (typeof e.code !== "number" || !(this.o.allowed ?? []).includes(e.code)) {
        this.report.unexpected++;
        if (this.report.unexpectedSamples.length < 10) this.report.unexpectedSamples.push(`${operation}: ${name}: ${e.details ?? e.message}`);
      }
      return undefined;
    }
  }

  /** Retries UNAVAILABLE for up to a minute (the sweep and set-up must not count a passing fault as loss). */
  private async retry<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if ((err as ServiceError).code !== status.UNAVAILABLE || attempt >= 120) throw err;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** Decrypts every acknowledged ciphertext: lost = no longer decrypts, mismatched = other plaintext. */
  async sweep(): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < this.acknowledged.length) {
        const ack = this.acknowledged[next++]!;
        try {
          const res = await this.retry(() => this.client().decrypt({ ciphertextBlob: ack.blob, encryptionContext: ack.context }, { deadline: this.deadline }));
          this.check(ack, res);
        } catch (err) {
          this.report.lost++;
          const e = err as ServiceError;
          if (this.report.unexpectedSamples.length < 10) this.report.unexpectedSamples.push(`LOST op ${ack.op}: ${STATUS_NAMES[e.code] ?? "?"}: ${e.details ?? e.message}`);
        }
        this.report.swept++;
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
  }
}

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)]!;
}

/** One line for logs and docs. */
export function summary(r: MixedLoadReport): string {
  const rate = r.elapsedMs > 0 ? Math.round((r.operations / r.elapsedMs) * 1000) : 0;
  return (
    `operations ${r.operations} (${rate}/s; ${Object.entries(r.byOperation).map(([k, v]) => `${k} ${v}`).join(", ")}), ` +
    `rotations ${r.rotations}, acknowledged ciphertexts ${r.acknowledgedCiphertexts}, swept ${r.swept}, ` +
    `lost ${r.lost}, mismatched ${r.mismatched}, failures ${JSON.stringify(r.failures)}, unexpected ${r.unexpected}`
  );
}
