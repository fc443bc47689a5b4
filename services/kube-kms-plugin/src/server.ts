// Serves the KMS v2 service on the Unix socket kube-apiserver calls: 0600 in a 0700 directory of this
// user, so only the apiserver's user (root on the node) and this plugin can reach it.
import { lstatSync, mkdirSync, unlinkSync } from "node:fs";
import path from "node:path";
import { Server, ServerCredentials, status } from "@grpc/grpc-js";
import type { sendUnaryData, ServerUnaryCall, UntypedServiceImplementation } from "@grpc/grpc-js";
import { ConfigError } from "@kms/config";
import { create } from "@bufbuild/protobuf";
import { grpcServiceDefinition, k8sKmsV2 as v2 } from "@kms/proto";
import { LimitError } from "./limits";
import { PluginError } from "./plugin";
import type { KubeKmsPlugin } from "./plugin";

type Handler<I, O> = (call: ServerUnaryCall<I, O>, callback: sendUnaryData<O>) => void;

function unary<I, O>(work: (request: I) => Promise<O>): Handler<I, O> {
  return (call, callback) => {
    work(call.request).then(
      (reply) => callback(null, reply),
      (err: unknown) => {
        if (err instanceof LimitError) return callback({ code: status.INVALID_ARGUMENT, details: err.message });
        if (err instanceof PluginError) return callback({ code: err.code, details: err.message });
        callback({ code: status.INTERNAL, details: "internal error" });
      },
    );
  };
}

export function createServer(plugin: KubeKmsPlugin): Server {
  const server = new Server({ "grpc.max_receive_message_length": 256 * 1024 });
  const handlers: UntypedServiceImplementation = {
    Status: unary(async () => create(v2.StatusResponseSchema, await plugin.status())),
    Encrypt: unary(async (r: v2.EncryptRequest) => create(v2.EncryptResponseSchema, await plugin.encrypt(r.plaintext, r.uid))),
    Decrypt: unary(async (r: v2.DecryptRequest) => create(v2.DecryptResponseSchema, { plaintext: await plugin.decrypt(r.ciphertext, r.keyId, r.annotations, r.uid) })),
  };
  server.addService(grpcServiceDefinition(v2.KeyManagementService), handlers);
  return server;
}

/**
 * The socket's directory: created 0700 if missing; if it exists it must be a directory of this user that
 * nobody else can enter, because whoever can write there can put their own socket in the apiserver's way.
 * A stale socket from a previous run is removed.
 */
function prepareSocket(socketPath: string): void {
  const dir = path.dirname(socketPath);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const dirStat = lstatSync(dir);
  const uid = process.getuid?.();
  if (!dirStat.isDirectory() || (uid !== undefined && dirStat.uid !== uid) || (dirStat.mode & 0o077) !== 0) {
    const mode = (dirStat.mode & 0o777).toString(8).padStart(4, "0");
    throw new ConfigError(
      "KMS_PLUGIN_LISTEN",
      `the socket's directory ${dir} must be a directory owned by this user with mode 0700 (it has mode ${mode}, owner ${dirStat.uid}); give the socket a directory of its own`,
    );
  }
  let stat;
  try {
    stat = lstatSync(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  if (!stat.isSocket()) throw new ConfigError("KMS_PLUGIN_LISTEN", `${socketPath} exists and is not a socket; refusing to remove it`);
  unlinkSync(socketPath);
}

/** Binds with umask 0177, so the socket is born 0600: there is no moment in which it is wider. */
export async function listen(server: Server, socketPath: string): Promise<void> {
  prepareSocket(socketPath);
  const previousUmask = process.umask(0o177);
  try {
    await new Promise<number>((resolve, reject) =>
      server.bindAsync(`unix://${socketPath}`, ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
  } finally {
    process.umask(previousUmask);
  }
}
