// RSA private-key operations of SOFTWARE keys, on worker threads instead of the worker's event loop.
// node:crypto has no asynchronous raw RSA or OAEP, and one RSA-4096 private operation takes ~4 ms here
// (2048: 0.3, 3072: 1.8): on the event loop, a burst of them held up every other caller's operations,
// HSM Encrypts included. Each thread runs OpenSSL on a KeyObject handed over by postMessage (Node
// clones the handle, not the key's bytes); the result comes back in a transferred buffer and the thread's
// own copy is zeroed. Threads start on first use, are unref'd (they never keep the process alive), and a
// thread that dies is replaced, failing only the operations it held.
import type { KeyObject } from "node:crypto";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";

const THREAD = `
const { parentPort } = require("node:worker_threads");
const { privateDecrypt, privateEncrypt, constants } = require("node:crypto");
parentPort.on("message", ({ id, op, key, data, hash, label }) => {
  let out;
  try {
    out = op === "raw"
      ? privateEncrypt({ key, padding: constants.RSA_NO_PADDING }, data)
      : privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash, ...(label ? { oaepLabel: label } : {}) }, data);
  } catch {
    parentPort.postMessage({ id, ok: false });
    return;
  }
  const result = new Uint8Array(out.length);
  result.set(out);
  out.fill(0);
  parentPort.postMessage({ id, ok: true, result }, [result.buffer]);
});
`;

type Job = { op: "raw"; key: KeyObject; data: Uint8Array } | { op: "oaep"; key: KeyObject; data: Uint8Array; hash: "sha1" | "sha256"; label?: Uint8Array | undefined };

interface Pending {
  resolve: (b: Buffer) => void;
  reject: (err: Error) => void;
}

/** The thread failed the operation (OpenSSL refused it): the caller says what that means. */
export class RsaOperationError extends Error {
  override readonly name = "RsaOperationError";
}

class RsaThread {
  readonly pending = new Map<number, Pending>();
  private readonly worker: Worker;

  constructor(onExit: (t: RsaThread) => void) {
    this.worker = new Worker(THREAD, { eval: true });
    this.worker.unref();
    this.worker.on("message", (m: { id: number; ok: boolean; result?: Uint8Array }) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (this.pending.size === 0) this.worker.unref();
      if (!p) return;
      if (m.ok && m.result) p.resolve(Buffer.from(m.result.buffer, m.result.byteOffset, m.result.length));
      else p.reject(new RsaOperationError("the RSA private-key operation failed"));
    });
    const fail = (err: unknown) => {
      for (const p of this.pending.values()) p.reject(new Error(`RSA thread stopped: ${err instanceof Error ? err.message : String(err)}`));
      this.pending.clear();
      onExit(this);
    };
    this.worker.on("error", fail);
    this.worker.on("exit", (code) => fail(new Error(`exit code ${code}`)));
  }

  stop(): Promise<number> {
    return this.worker.terminate();
  }

  run(id: number, job: Job): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.ref(); // an operation in flight keeps the process up until it is answered
      // Copies of exactly the bytes: a Buffer may be a view of a shared pool slab, and posting it would
      // clone the whole slab, other callers' bytes included. The copies are transferred, not cloned.
      const data = Uint8Array.from(job.data);
      const label = job.op === "oaep" && job.label?.length ? Uint8Array.from(job.label) : undefined;
      this.worker.postMessage({ id, ...job, data, label }, label ? [data.buffer, label.buffer] : [data.buffer]);
    });
  }
}

export class RsaThreads {
  private threads: RsaThread[] = [];
  private nextId = 0;

  /** `size`: threads at most; default one per core but the event loop's, 1 to 4. */
  constructor(private readonly size = Math.min(4, Math.max(1, availableParallelism() - 1))) {}

  /** The raw RSA private operation (m^d mod n) on an encoded message of the modulus length. */
  raw(key: KeyObject, encoded: Uint8Array): Promise<Buffer> {
    return this.thread().run(this.nextId++, { op: "raw", key, data: encoded });
  }

  /** RSAES-OAEP decryption; RsaOperationError when OpenSSL refuses the ciphertext. */
  oaepDecrypt(key: KeyObject, hash: "sha1" | "sha256", ciphertext: Uint8Array, label?: Uint8Array): Promise<Buffer> {
    return this.thread().run(this.nextId++, { op: "oaep", key, data: ciphertext, hash, label });
  }

  /** Stops every thread; their operations in flight fail. The next operation starts new ones. */
  async stop(): Promise<void> {
    const threads = this.threads;
    this.threads = [];
    await Promise.all(threads.map((t) => t.stop()));
  }

  /** The least busy thread, a new one while there are fewer than `size`. */
  private thread(): RsaThread {
    const idle = this.threads.find((t) => t.pending.size === 0);
    if (idle) return idle;
    if (this.threads.length < this.size) {
      const t = new RsaThread((gone) => (this.threads = this.threads.filter((x) => x !== gone)));
      this.threads.push(t);
      return t;
    }
    return this.threads.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  }
}

/** One pool for the process's SOFTWARE engine. */
export const rsaThreads = new RsaThreads();
