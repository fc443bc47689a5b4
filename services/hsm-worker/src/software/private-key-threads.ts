// The slow private-key operations of SOFTWARE keys, on worker threads instead of the worker's event loop:
// RSA (node:crypto has no asynchronous raw RSA or OAEP; one RSA-4096 operation is ~4 ms here, 3072: 1.8,
// 2048: 0.3) and ML-DSA signing (@noble/post-quantum, 4.7 / 7.5 / 9.2 ms for ML-DSA-44/65/87). On the
// event loop, a burst of them held up every other caller's operations, HSM Encrypts included.
// RSA: each thread runs OpenSSL on a KeyObject handed over by postMessage (Node clones the handle, not the
// key's bytes). ML-DSA: the expanded secret key is copied to the thread for the call and wiped there
// after it. Results come back in a transferred buffer and the thread's own copy is zeroed. Threads start
// on first use, are unref'd when idle (they never keep the process alive), and a thread that dies is
// replaced, failing only the operations it held.
import type { KeyObject } from "node:crypto";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { MlDsaInput, MlDsaLevel } from "../asymmetric/ml-dsa";

/** Resolved here, where the package is a dependency: an eval'd thread resolves nothing on its own. */
const ML_DSA_MODULE = require.resolve("@noble/post-quantum/ml-dsa.js");

const THREAD = `
const { parentPort, workerData } = require("node:worker_threads");
const { privateDecrypt, privateEncrypt, constants } = require("node:crypto");
const { ml_dsa44, ml_dsa65, ml_dsa87 } = require(workerData.mlDsaModule);
const ML_DSA = { 44: ml_dsa44, 65: ml_dsa65, 87: ml_dsa87 };
function run({ op, key, data, hash, label, level, secretKey }) {
  if (op === "raw") return privateEncrypt({ key, padding: constants.RSA_NO_PADDING }, data);
  if (op === "oaep") return privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash, ...(label ? { oaepLabel: label } : {}) }, data);
  try {
    const dsa = ML_DSA[level];
    return op === "ml-dsa-mu" ? dsa.internal.sign(data, secretKey, { externalMu: true }) : dsa.sign(data, secretKey);
  } finally {
    secretKey.fill(0);
  }
}
parentPort.on("message", (job) => {
  let out;
  try {
    out = run(job);
  } catch {
    parentPort.postMessage({ id: job.id, ok: false });
    return;
  } finally {
    if (job.data) job.data.fill(0);
  }
  const result = new Uint8Array(out.length);
  result.set(out);
  out.fill(0);
  parentPort.postMessage({ id: job.id, ok: true, result }, [result.buffer]);
});
`;

type Job =
  | { op: "raw"; key: KeyObject; data: Uint8Array }
  | { op: "oaep"; key: KeyObject; data: Uint8Array; hash: "sha1" | "sha256"; label?: Uint8Array | undefined }
  | { op: "ml-dsa" | "ml-dsa-mu"; level: MlDsaLevel; secretKey: Uint8Array; data: Uint8Array };

interface Pending {
  resolve: (b: Buffer) => void;
  reject: (err: Error) => void;
}

/** The thread failed the operation (e.g. OpenSSL refused a ciphertext): the caller says what that means. */
export class PrivateKeyOperationError extends Error {
  override readonly name = "PrivateKeyOperationError";
}

class PrivateKeyThread {
  readonly pending = new Map<number, Pending>();
  private readonly worker: Worker;
  private nextId = 0;

  constructor(onExit: (t: PrivateKeyThread) => void) {
    this.worker = new Worker(THREAD, { eval: true, workerData: { mlDsaModule: ML_DSA_MODULE } });
    this.worker.unref();
    this.worker.on("message", (m: { id: number; ok: boolean; result?: Uint8Array }) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (this.pending.size === 0) this.worker.unref();
      if (!p) return;
      if (m.ok && m.result) p.resolve(Buffer.from(m.result.buffer, m.result.byteOffset, m.result.length));
      else p.reject(new PrivateKeyOperationError("the private-key operation failed"));
    });
    const fail = (err: unknown) => {
      for (const p of this.pending.values()) p.reject(new Error(`private-key thread stopped: ${err instanceof Error ? err.message : String(err)}`));
      this.pending.clear();
      onExit(this);
    };
    this.worker.on("error", fail);
    this.worker.on("exit", (code) => fail(new Error(`exit code ${code}`)));
  }

  stop(): Promise<number> {
    return this.worker.terminate();
  }

  run(job: Job): Promise<Buffer> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.ref(); // an operation in flight keeps the process up until it is answered
      // Copies of exactly the bytes: a Buffer may be a view of a shared pool slab, and posting it would
      // clone the whole slab, other callers' bytes included. The copies are transferred, not cloned.
      const data = Uint8Array.from(job.data);
      const label = job.op === "oaep" && job.label?.length ? Uint8Array.from(job.label) : undefined;
      const secretKey = job.op === "ml-dsa" || job.op === "ml-dsa-mu" ? Uint8Array.from(job.secretKey) : undefined;
      const transfer = [data.buffer, ...(label ? [label.buffer] : []), ...(secretKey ? [secretKey.buffer] : [])];
      this.worker.postMessage({ id, ...job, data, label, secretKey }, transfer);
    });
  }
}

export class PrivateKeyThreads {
  private threads: PrivateKeyThread[] = [];

  /** `size`: threads at most; default one per core but the event loop's, 1 to 4. */
  constructor(private readonly size = Math.min(4, Math.max(1, availableParallelism() - 1))) {}

  /** The raw RSA private operation (m^d mod n) on an encoded message of the modulus length. */
  raw(key: KeyObject, encoded: Uint8Array): Promise<Buffer> {
    return this.thread().run({ op: "raw", key, data: encoded });
  }

  /** RSAES-OAEP decryption; PrivateKeyOperationError when OpenSSL refuses the ciphertext. */
  oaepDecrypt(key: KeyObject, hash: "sha1" | "sha256", ciphertext: Uint8Array, label?: Uint8Array): Promise<Buffer> {
    return this.thread().run({ op: "oaep", key, data: ciphertext, hash, label });
  }

  /**
   * ML-DSA signing as AWS's ML_DSA_SHAKE_256: hedged (fresh randomness per signature), empty context, of
   * a message or of an external μ.
   */
  mlDsaSign(level: MlDsaLevel, secretKey: Uint8Array, input: MlDsaInput): Promise<Buffer> {
    const job: Job = input.kind === "message" ? { op: "ml-dsa", level, secretKey, data: input.message } : { op: "ml-dsa-mu", level, secretKey, data: input.mu };
    return this.thread().run(job);
  }

  /** Stops every thread; their operations in flight fail. The next operation starts new ones. */
  async stop(): Promise<void> {
    const threads = this.threads;
    this.threads = [];
    await Promise.all(threads.map((t) => t.stop()));
  }

  /** The least busy thread, a new one while there are fewer than `size`. */
  private thread(): PrivateKeyThread {
    const idle = this.threads.find((t) => t.pending.size === 0);
    if (idle) return idle;
    if (this.threads.length < this.size) {
      const t = new PrivateKeyThread((gone) => (this.threads = this.threads.filter((x) => x !== gone)));
      this.threads.push(t);
      return t;
    }
    return this.threads.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  }
}

/** One pool for the process's SOFTWARE engine. */
export const privateKeyThreads = new PrivateKeyThreads();
