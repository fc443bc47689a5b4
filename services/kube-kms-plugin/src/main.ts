#!/usr/bin/env node
// kube-kms-plugin: the Kubernetes KMS v2 plugin. Reads its configuration (a bad value stops it with a
// message naming the variable), connects to kms-api, serves kube-apiserver on KMS_PLUGIN_LISTEN.
import { KmsClient, clientCredentials } from "@kms/client";
import { ConfigError } from "@kms/config";
import { createLogger } from "@kms/telemetry";
import { loadPluginConfig } from "./config";
import { KubeKmsPlugin } from "./plugin";
import { createServer, listen } from "./server";

/**
 * Every call to kms-api ends within this, so that a plugin call (at most two kms-api calls in a row: a
 * Decrypt and, first time only, a DescribeKey) ends within the EncryptionConfiguration's timeout (5s in deploy/).
 */
const KMS_DEADLINE_MS = 2000;

async function main(): Promise<void> {
  let config;
  try {
    config = loadPluginConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`kube-kms-plugin: configuration error: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const log = createLogger(config.logLevel, "kube-kms-plugin");
  const channel = clientCredentials(config.tls);
  const kms = new KmsClient({
    address: config.kmsAddress,
    ...(channel ? { credentials: channel } : {}),
    deadlineMs: KMS_DEADLINE_MS,
    // Fail fast: the apiserver retries on its own schedule; a retry here would only outlast its timeout.
    retries: 0,
    // Reconnect within seconds once kms-api is back (grpc-js would back off up to two minutes).
    channelOptions: { "grpc.initial_reconnect_backoff_ms": 500, "grpc.max_reconnect_backoff_ms": 5000 },
  });
  const plugin = new KubeKmsPlugin({ kms, keyId: config.keyId, cluster: config.cluster, log });
  const server = createServer(plugin);
  try {
    await listen(server, config.socketPath);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`kube-kms-plugin: configuration error: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  // On stdout, the line a supervisor (or a test) waits for.
  process.stdout.write(`${JSON.stringify({ msg: "kube-kms-plugin listening", socket: config.socketPath, keyId: config.keyId, cluster: config.cluster, kmsAddress: config.kmsAddress })}\n`);
  const stop = () => {
    server.tryShutdown(() => {
      kms.close();
      process.exit(0);
    });
    setTimeout(() => process.exit(0), 5000).unref();
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`kube-kms-plugin: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
