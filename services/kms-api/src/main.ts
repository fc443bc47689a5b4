// kms-api process entry: configuration, database (migrated), worker client, gRPC server, and a
// graceful shutdown on SIGTERM (stop accepting, finish in-flight calls, flush audit, exit).
import { ServerCredentials } from "@grpc/grpc-js";
import { ConfigError, loadApiConfig } from "@kms/config";
import type { ApiConfig } from "@kms/config";
import { startTelemetry } from "@kms/telemetry";
import { Authenticator, DEV_PRINCIPAL } from "./auth/authenticate";
import { serverCredentials } from "./auth/credentials";
import { createJwtVerifier } from "./auth/jwt";
import { connect, migrate } from "@kms/db";
import { JobScheduler } from "./jobs/scheduler";
import { listenForKeyEvents } from "./key-events";
import { serverOptions } from "./limits";
import { createServices } from "./services";
import { startAwsListener } from "./fronts/aws/listener";
import type { AwsListener } from "./fronts/aws/listener";
import { AccessKeysError } from "./fronts/aws/access-keys";
import { createLogger, describeError } from "@kms/telemetry";
import { SERVICE_NAME, buildHealthServer, buildServer } from "./server";

async function main(): Promise<void> {
  let config;
  try {
    config = loadApiConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`kms-api: configuration error: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const log = createLogger(config.logLevel, "kms-api");
  // Before anything else: spans and instruments made from here on reach the SDK (when one is configured).
  const telemetry = startTelemetry("kms-api");
  const sql = connect(config.databaseUrl, { statementTimeoutMs: config.dbStatementTimeoutMs });
  await withRetry(() => migrate(sql), log);
  // Dev mode (KMS_INSECURE_DEV_MODE: plaintext loopback, no JWKS): the one caller, "dev", administers everything.
  const access = config.devMode && config.access.admins.length === 0 ? { ...config.access, admins: [DEV_PRINCIPAL] } : config.access;
  const jwt = config.jwt ? await createJwtVerifier(config.jwt) : undefined;
  const authenticator = new Authenticator({
    jwt,
    mutualTls: config.tls?.clientCa !== undefined,
    anonymous: config.devMode ? DEV_PRINCIPAL : config.anonymousPrincipal,
  });
  const services = await createServices({
    sql,
    access,
    workerSocket: config.workerSocket,
    workerDeadlineMs: config.workerDeadlineMs,
    rotateAfterEncryptions: config.rotateAfterEncryptions,
    importedKeyMaxEncryptions: config.importedKeyMaxEncryptions,
    metadataCacheTtlMs: config.metadataCacheTtlMs,
    rootRetireDelayMs: config.rootRetireDelayMs,
    log,
    rateLimit: config.limits,
    authFailures: config.limits,
    refusalWindowMs: config.limits.refusalWindowMs,
  });
  const jobs = new JobScheduler(services, config.jobIntervalMs);
  jobs.start();
  services.checkpoints.start(config.auditCheckpointIntervalMs);
  const unlisten = config.dbNotifications ? await listenForKeyEvents(sql, services) : async () => {};

  const { server, health } = buildServer(services, authenticator, serverOptions(config.limits));
  const { host, port } = config.listen;
  const hostPart = host.includes(":") ? `[${host}]` : host;
  const boundPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${hostPart}:${port}`, serverCredentials(config.tls), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const address = `${hostPart}:${boundPort}`;
  const healthServer = config.healthListen ? buildHealthServer(health) : undefined;
  if (healthServer && config.healthListen) {
    const h = config.healthListen;
    await new Promise<number>((resolve, reject) =>
      healthServer.bindAsync(`${h.host.includes(":") ? `[${h.host}]` : h.host}:${h.port}`, ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
  }
  let aws: AwsListener | undefined;
  if (config.aws) {
    try {
      aws = await startAwsListener(services, config.aws, config.tls);
    } catch (err) {
      if (err instanceof AccessKeysError) throw new ConfigError("KMS_AWS_ACCESS_KEYS_FILE", err.message);
      throw err;
    }
  }
  // Machine-readable start-up line on stdout: the dev stack and tests wait for it.
  const awsFields = aws ? { awsEndpoint: aws.endpoint, awsRegion: config.aws!.region, awsAccessKeys: aws.accessKeys.size } : {};
  process.stdout.write(
    JSON.stringify({ level: "info", msg: "kms-api listening", address, ...awsFields, worker: config.workerSocket, mode: describeMode(config) }) + "\n",
  );

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info("shutting down", { signal });
    health.setStatus("", "NOT_SERVING");
    health.setStatus(SERVICE_NAME, "NOT_SERVING");
    const awsClosed = aws?.close();
    const force = setTimeout(() => {
      log.warn("grace period over; cancelling in-flight calls");
      server.forceShutdown();
      aws?.forceClose();
    }, config.shutdownGraceMs);
    server.tryShutdown(async () => {
      await awsClosed;
      clearTimeout(force);
      healthServer?.forceShutdown();
      await jobs.stop();
      await services.usage.stop();
      await unlisten();
      await services.refusals?.stop(); // the window's refusal counts, before the audit drains
      await services.audit.drain();
      await services.checkpoints.stop(); // the last checkpoint covers every row this replica wrote
      services.worker.close();
      await sql.end({ timeout: 5 });
      await telemetry.shutdown();
      log.info("stopped");
      process.exit(0);
    });
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

function describeMode(config: ApiConfig): string {
  if (config.devMode) return 'plaintext loopback (KMS_INSECURE_DEV_MODE): every caller is principal "dev"';
  if (config.anonymousPrincipal !== undefined) return `TLS without client authentication: every caller is principal ${JSON.stringify(config.anonymousPrincipal)}`;
  const transport = config.tls ? (config.tls.clientCa ? "mutual TLS" : "TLS") : "plaintext loopback";
  return `${transport}${config.jwt ? ", bearer JWT" : ""}`;
}

/** The database may still be starting (a pod beside a fresh Postgres): retry for about 30 s. */
async function withRetry<T>(fn: () => Promise<T>, log: ReturnType<typeof createLogger>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= 30) throw err;
      log.warn("database not ready; retrying", { attempt, ...describeError(err) });
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

main().catch((err) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`kms-api: configuration error: ${err.message}\n`);
    process.exit(1);
  }
  process.stderr.write(JSON.stringify({ level: "error", service: "kms-api", msg: "start-up failed", ...describeError(err) }) + "\n");
  process.exit(1);
});
