// Starts the real stack for an integration test: a scratch database on the real Postgres, a private
// SoftHSM2 token (or none, for the software root key), the hsm-worker and kms-api as child processes.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Metadata, ServiceError } from "@grpc/grpc-js";
import { createScratchDatabase } from "@kms/db";
import type { ScratchDatabase } from "@kms/db";
import { newAccessKey, startApi, startWorker, writeAccessKeysFile } from "@kms/dev-stack";
import type { ApiProcess, AwsAccessKey, WorkerProcess } from "@kms/dev-stack";
import { createPromiseClient, kms } from "@kms/proto";
import { ensureSoftHsmToken } from "@kms/softhsm";

export type KmsClient = ReturnType<typeof newClient>;

function newClient(address: string) {
  return createPromiseClient(kms.KeyManagementService, address);
}

export interface Stack {
  address: string;
  client: KmsClient;
  db: ScratchDatabase;
  dataDir: string;
  /** The SoftHSM2 directory (softhsm2.conf, tokens/, pin) the worker uses; undefined on the software root. */
  softHsmDir: string | undefined;
  workerEnv: NodeJS.ProcessEnv;
  apiEnv: NodeJS.ProcessEnv;
  worker: WorkerProcess;
  api: ApiProcess;
  /** Starts the worker; `env` replaces workerEnv (a stack moved from the software root onto a token). */
  startWorker(env?: NodeJS.ProcessEnv): Promise<WorkerProcess>;
  /** Another kms-api process on the same database and worker (a second replica). */
  startReplica(env?: NodeJS.ProcessEnv): Promise<{ api: ApiProcess; client: KmsClient }>;
  restartApi(): Promise<void>;
  stop(): Promise<void>;
  /** The AWS-compatible API (StackOptions.aws): its endpoint and access keys. */
  aws: AwsStack | undefined;
}

/** A worker's environment on a SoftHSM2 token labelled "kms-it" under `softHsmDir` (made when missing). */
export function softHsmWorkerEnv(base: NodeJS.ProcessEnv, softHsmDir: string, testEnv?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const token = ensureSoftHsmToken(softHsmDir, "kms-it");
  return {
    ...base,
    SOFTHSM2_CONF: token.confPath,
    KMS_PKCS11_MODULE: token.module,
    KMS_PKCS11_TOKEN_LABEL: token.label,
    KMS_PKCS11_PIN_FILE: token.pinFile,
    KMS_PKCS11_POOL_SIZE: "4",
    KMS_PKCS11_CALL_MODE: "inline", // as the dev stack runs SoftHSM2; unit tests cover thread-pool
    // A test's own pool size or call mode wins (key-generation-load.test.ts runs thread-pool mode).
    ...pick(testEnv, "KMS_PKCS11_POOL_SIZE", "KMS_PKCS11_CALL_MODE"),
  };
}

/** What an AWS client needs: point it at `endpoint` in `region`, signing with the key pair. */
export interface AwsAccess {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The principal the key pair authenticates as (key policies see it). */
  principal: string;
}

export interface AwsStack {
  /** The first kms-api's endpoint (a replica's is its ApiProcess.awsEndpoint). */
  endpoint: string;
  region: string;
  /** KMS_AWS_ACCESS_KEYS_FILE (mode 0600), one key pair per principal. */
  keysFile: string;
  keys: AwsAccessKey[];
  /** The access of `principal`'s key pair (default: "dev", the dev-mode administrator) at `endpoint`. */
  access(principal?: string, endpoint?: string): AwsAccess;
}

export interface AwsStackOptions {
  /** Principals to make key pairs for besides "dev" (the administrator in dev mode). */
  principals?: string[];
}

export interface StackOptions {
  /** A SoftHSM2 token (default) or no PKCS#11 module at all (software root key). */
  hsm?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Use this SoftHSM2 directory (a token labelled "kms-it", e.g. a restored copy) instead of a new one under dataDir. */
  softHsmDir?: string;
  /** Use this database (e.g. one a dump was restored into) instead of a new empty one; stop() drops it too. */
  db?: ScratchDatabase;
  /** KMS_CREATE_ROOT_KEY on the worker's first start: true (default) for a new deployment, false for a restore. */
  createRootKey?: boolean;
  /** Turn on the AWS-compatible API (KMS_AWS_LISTEN on a free loopback port) with a generated keys file. */
  aws?: boolean | AwsStackOptions;
}

/** The keys file and env of a stack's AWS listener, and how to reach it. */
function awsSetup(dataDir: string, options: boolean | AwsStackOptions | undefined, env: NodeJS.ProcessEnv) {
  if (!options) return undefined;
  const principals = ["dev", ...((typeof options === "object" ? options.principals : undefined) ?? [])];
  const keys = principals.map((p) => newAccessKey(p));
  const keysFile = path.join(dataDir, "aws-access-keys");
  writeAccessKeysFile(keysFile, keys);
  const region = env.KMS_AWS_REGION ?? "us-east-1";
  return { keys, keysFile, region, env: { KMS_AWS_LISTEN: env.KMS_AWS_LISTEN ?? "127.0.0.1:0", KMS_AWS_ACCESS_KEYS_FILE: keysFile } };
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "kms-it-"));
  const db = options.db ?? (await createScratchDatabase("kms_it"));
  const socket = path.join(dataDir, "run", "hsm-worker.sock");
  const base: NodeJS.ProcessEnv = { ...process.env, KMS_DATA_DIR: dataDir, KMS_WORKER_SOCKET: socket, KMS_LOG_LEVEL: "warn", ...options.env };
  // Only the worker gets PKCS#11 settings, and only this stack's: a SOFTHSM2_CONF left in this process by
  // another test file (jest reuses workers) must not leak into kms-api or tools run with its environment.
  delete base.KMS_PKCS11_MODULE;
  delete base.SOFTHSM2_CONF;
  // No module: the software root key, which the worker uses only when told so explicitly.
  let workerEnv: NodeJS.ProcessEnv = { ...base, KMS_ALLOW_SOFTWARE_ROOT: "true" };
  const softHsmDir = options.hsm === false ? undefined : (options.softHsmDir ?? path.join(dataDir, "softhsm"));
  if (softHsmDir !== undefined) workerEnv = softHsmWorkerEnv(base, softHsmDir, options.env);
  const aws = awsSetup(dataDir, options.aws, base);
  const apiEnv: NodeJS.ProcessEnv = {
    ...base,
    KMS_LISTEN: "127.0.0.1:0",
    DATABASE_URL: db.url,
    KMS_WORKER_DEADLINE_MS: "3000",
    KMS_SHUTDOWN_GRACE_MS: "3000",
    ...aws?.env,
  };
  // A plaintext stack is dev mode, which kms-api only runs when told (it has no effect on TLS or JWKS replicas).
  if (!apiEnv.KMS_TLS_CERT) apiEnv.KMS_INSECURE_DEV_MODE ??= "true";

  const replicas: { api: ApiProcess; client: KmsClient }[] = [];
  const stack: Stack = {
    dataDir,
    db,
    softHsmDir,
    workerEnv,
    apiEnv,
    address: "",
    client: undefined as unknown as KmsClient,
    worker: undefined as unknown as WorkerProcess,
    api: undefined as unknown as ApiProcess,
    aws: undefined,
    async startWorker(given?: NodeJS.ProcessEnv) {
      // KMS_TEST_WORKER_ENTRY runs another build of the worker (e.g. to bisect); default: this tree's.
      const entry = process.env.KMS_TEST_WORKER_ENTRY;
      // The first start creates the token's root key; restarts must find it (fail closed otherwise).
      const env = given ?? (stack.worker === undefined && options.createRootKey !== false ? { KMS_CREATE_ROOT_KEY: "true", ...workerEnv } : workerEnv);
      stack.worker = await startWorker(env, entry ? { entry } : {});
      return stack.worker;
    },
    async startReplica(env = {}) {
      const api = await startApi({ ...apiEnv, ...env });
      const client = newClient(api.address);
      replicas.push({ api, client });
      return { api, client };
    },
    async restartApi() {
      stack.client.close();
      await stack.api.stop();
      const awsAddress = stack.aws ? { KMS_AWS_LISTEN: new URL(stack.aws.endpoint).host } : {};
      stack.api = await startApi({ ...apiEnv, KMS_LISTEN: stack.address, ...awsAddress });
      stack.client = newClient(stack.address);
    },
    async stop() {
      stack.client?.close();
      for (const r of replicas) r.client.close();
      await Promise.allSettled(replicas.map((r) => r.api.stop()));
      await Promise.allSettled([stack.api?.stop(), stack.worker?.stop()]);
      await db.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  try {
    await stack.startWorker();
    stack.api = await startApi(apiEnv);
    stack.address = stack.api.address;
    stack.client = newClient(stack.address);
    if (aws) {
      if (stack.api.awsEndpoint === undefined) throw new Error("kms-api did not report its AWS endpoint");
      const endpoint = stack.api.awsEndpoint;
      stack.aws = {
        endpoint,
        region: aws.region,
        keysFile: aws.keysFile,
        keys: aws.keys,
        access(principal = "dev", at = endpoint) {
          const key = aws.keys.find((k) => k.principal === principal);
          if (!key) throw new Error(`no AWS access key for ${principal}: add it to StackOptions.aws.principals`);
          return { endpoint: at, region: aws.region, accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey, principal };
        },
      };
    }
  } catch (err) {
    await stack.stop();
    throw err;
  }
  return stack;
}

function pick(env: NodeJS.ProcessEnv | undefined, ...names: string[]): NodeJS.ProcessEnv {
  return Object.fromEntries(names.filter((n) => env?.[n] !== undefined).map((n) => [n, env![n]]));
}

/** The gRPC error a call failed with (fails the test if it succeeded). */
export async function grpcError(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (err) {
    if (typeof (err as ServiceError).code === "number") return err as ServiceError;
    throw err;
  }
  throw new Error("expected the call to fail");
}

export function errorCode(metadata: Metadata | undefined): string | undefined {
  const v = metadata?.get("kms-error-code")[0];
  return typeof v === "string" ? v : undefined;
}
