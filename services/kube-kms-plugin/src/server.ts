// Serves the KMS v2 service on the Unix socket kube-apiserver calls: 0600 in a 0700 directory of this
// user, so only the apiserver's user (root on the node) and this plugin can reach it.
import { Server, status } from "@grpc/grpc-js";
import type { sendUnaryData, ServerUnaryCall, UntypedServiceImplementation } from "@grpc/grpc-js";
import { ConfigError } from "@kms/config";
import { create } from "@bufbuild/protobuf";
import { grpcServiceDefinition } from "@kms/proto";
import { k8sKmsV2 as v2, listenOnPrivateSocket } from "@kms/proto/internal";
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

/** Serves on unix://socketPath, a 0600 socket in this user's 0700 directory (see @kms/proto's unix-socket.ts). */
export function listen(server: Server, socketPath: string): Promise<void> {
  return listenOnPrivateSocket(server, socketPath, (problem) =>
    new ConfigError("KMS_PLUGIN_LISTEN", problem.startsWith("the socket's directory") ? `${problem}; give the socket a directory of its own` : problem),
  );
}
