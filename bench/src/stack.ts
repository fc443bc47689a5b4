// The system under test: an hsm-worker on a private SoftHSM token and a kms-api in front of it,
// started the same way the dev stack starts them. A further replica (the two-replica row) is another
// such pair on the same token, root key and database: its own worker, its own kms-api, one audit chain.
import path from "node:path";
import { startApi, startWorker } from "@kms/dev-stack";
import { ensureSoftHsmToken } from "@kms/softhsm";

export interface Stack {
  address: string;
  /** kms-api and hsm-worker, for RSS sampling. */
  pids: number[];
  /** The SoftHSM token the worker uses (the raw baseline signs with the same module). */
  token: ReturnType<typeof ensureSoftHsmToken>;
  /** Stops kms-api, then the worker it calls. */
  stop(): Promise<void>;
  /** The services' combined output, for a failure message. */
  output(): string;
}

/** `replica`: 0 for the first stack, which creates the token's root key; n > 0 for a further one, which finds it. */
export async function startStack(dir: string, databaseUrl: string, nodeArgs: string[] = [], replica = 0): Promise<Stack> {
  const token = ensureSoftHsmToken(path.join(dir, "softhsm"), "kms-bench");
  const suffix = replica === 0 ? "" : `-${replica}`;
  const common = {
    ...process.env,
    KMS_DATA_DIR: path.join(dir, `data${suffix}`),
    KMS_WORKER_SOCKET: path.join(dir, `worker${suffix}.sock`),
  };
  const worker = await startWorker({
    ...common,
    KMS_PKCS11_MODULE: token.module,
    SOFTHSM2_CONF: token.confPath,
    KMS_PKCS11_TOKEN_LABEL: token.label,
    KMS_PKCS11_PIN_FILE: token.pinFile,
    KMS_CREATE_ROOT_KEY: replica === 0 ? "true" : "false", // a fresh token of its own; a replica finds its root key
    KMS_PKCS11_CALL_MODE: process.env.KMS_PKCS11_CALL_MODE || "inline", // SoftHSM2, in the worker's process
  }, { nodeArgs });
  let api;
  try {
    // One principal drives all the load here: lift its rate limit (default 2,000/s), which would
    // otherwise answer RESOURCE_EXHAUSTED, cheaply, for everything above it.
    // Plaintext loopback with "dev" as the caller: dev mode, which kms-api runs only when told.
    api = await startApi({ ...common, KMS_LISTEN: "127.0.0.1:0", KMS_INSECURE_DEV_MODE: "true", DATABASE_URL: databaseUrl, KMS_RATE_LIMIT_PER_SECOND: "1000000", KMS_RATE_LIMIT_BURST: "1000000" }, { nodeArgs });
  } catch (err) {
    await worker.stop();
    throw err;
  }
  const started = api;
  return {
    address: started.address,
    pids: [started.pid, worker.pid],
    token,
    stop: async () => {
      try {
        await started.stop();
      } finally {
        await worker.stop();
      }
    },
    output: () => `--- kms-api ---\n${started.output()}\n--- hsm-worker ---\n${worker.output()}`,
  };
}
