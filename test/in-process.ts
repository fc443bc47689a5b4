// A kms-api replica inside the test process, with an injected clock, against the stack's real
// Postgres and hsm-worker: how tests drive time (rotation, deletion windows) without sleeping.
import { ServerCredentials } from "@grpc/grpc-js";
import { connect } from "@kms/db";
import { Authenticator, DEV_PRINCIPAL, JobScheduler, buildServer, createServices, listenForKeyEvents } from "@kms/kms-api";
import { createLogger } from "@kms/telemetry";
import { createPromiseClient, kms } from "@kms/proto";
import type { Stack } from "./harness";

export interface FakeClock {
  now: Date;
  advanceDays(days: number): void;
}

export function fakeClock(start = new Date()): FakeClock {
  const clock = {
    now: start,
    advanceDays(days: number) {
      clock.now = new Date(clock.now.getTime() + days * 86_400_000);
    },
  };
  return clock;
}

export async function inProcessReplica(stack: Stack, clock: FakeClock, rotateAfterEncryptions = 2 ** 30) {
  const sql = connect(stack.db.url);
  const services = await createServices({
    sql,
    workerSocket: stack.apiEnv.KMS_WORKER_SOCKET ?? "",
    workerDeadlineMs: 3000,
    rotateAfterEncryptions,
    log: createLogger("error", "test-replica"),
    access: { admins: ["dev"], creators: ["*"], auditors: [], aliasPrefixes: {} },
    clock: () => clock.now,
    usageFlushIntervalMs: 100,
    // These replicas race each other's jobs and then read what the other wrote at once: a cached key
    // would hold until the other's NOTIFY arrives, which no test here waits for. How long a change can
    // go unseen by a caching replica is replica-consistency.test.ts's subject.
    metadataCacheTtlMs: 0,
  });
  const unlisten = await listenForKeyEvents(sql, services);
  const { server } = buildServer(services, new Authenticator({ jwt: undefined, mutualTls: false, anonymous: DEV_PRINCIPAL }));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const client = createPromiseClient(kms.KeyManagementService, `127.0.0.1:${port}`);
  const jobs = new JobScheduler(services, 3_600_000);
  return {
    client,
    services,
    jobs,
    async close() {
      client.close();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      await services.usage.stop();
      await unlisten();
      await services.audit.drain();
      services.worker.close();
      await sql.end();
    },
  };
}
