// The hsm-worker process: configuration, backend, server on the Unix socket, graceful shutdown.
// First, before any import can start libuv's thread pool: size it (see thread-pool-size.ts).
import "./thread-pool-size";
import { ConfigError, loadWorkerConfig } from "@kms/config";
import type { WorkerConfig } from "@kms/config";
import { hsm } from "@kms/proto/internal";
import { observeHsmSessions, startTelemetry } from "@kms/telemetry";
import { createBackend } from "./create-backend";
import { errorChain, processLogger } from "@kms/telemetry";
import { KeyGenerationQueue } from "./key-generation-queue";
import { createHsmWorkerServer, listen, shutdown as shutdownServer } from "./server";
import { traceBackend } from "./telemetry";

const log = processLogger("hsm-worker");

async function main(): Promise<void> {
  let config: WorkerConfig;
  try {
    config = loadWorkerConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`hsm-worker: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  log.setLevel(config.logLevel);
  // Before anything else: spans and instruments made from here on reach the SDK (when one is configured).
  const telemetry = startTelemetry("hsm-worker");
  const { backend, checkpoints, tokens, moduleProfile } = await createBackend(config);
  if (backend.metrics().sessions !== undefined) observeHsmSessions(() => backend.metrics().sessions ?? { inUse: 0, waiting: 0 });
  const server = createHsmWorkerServer(traceBackend(backend), { keyGeneration: new KeyGenerationQueue(config.keyGeneration), checkpoints, tokens });
  await listen(server, config.socketPath);
  const s = backend.status();
  log.info(`hsm-worker listening on unix://${config.socketPath}: ${s.description}, root key id ${s.rootKeyId}`, {
    socket: config.socketPath,
    backend: s.backend === hsm.Backend.PKCS11 ? "pkcs11" : "software-root",
    rootKeyId: s.rootKeyId,
    ...(moduleProfile === undefined ? {} : { moduleProfile }),
  });
  // The worker has no database: it cannot tell whether rows still name the source; kms admin rotate-root moves them.
  const source = s.sourceRootKeyIds ?? [];
  if (source.length > 0) log.info(`source root file ${config.pkcs11?.sourceRootKeyFile} (root key ids ${source.join(", ")}): unwrap only, until kms admin rotate-root has moved its keys onto the token`, { sourceRootKeyIds: source });

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info(`hsm-worker: ${signal}, shutting down`);
    void shutdownServer(server).then(() => {
      void (async () => {
        try {
          // Closes the sessions and, with the last user of the module, C_Finalize.
          await backend.close();
          await telemetry.shutdown();
        } catch (err) {
          log.error("hsm-worker: shutdown failed", { error: errorChain(err) });
          process.exit(1);
        }
        process.exit(0);
      })();
    });
  };
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  process.once("SIGINT", () => shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  // A setting that cannot work (no HSM and no software opt-in, an unsafe socket directory): name it.
  if (err instanceof ConfigError) {
    process.stderr.write(`hsm-worker: ${err.message}\n`);
    process.exit(1);
  }
  log.error("hsm-worker failed to start", { error: errorChain(err) });
  process.exit(1);
});
