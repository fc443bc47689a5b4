// The baseline: a bare grpc-js server whose one unary method returns its request bytes. Raw Buffer
// serializers (no protobuf), so the kms-api figures can be read as a ratio to what grpc-js alone does
// on this machine. Run as its own process; prints {"port": n} on stdout once it listens.
import { Server, ServerCredentials } from "@grpc/grpc-js";
import type { handleUnaryCall, ServiceDefinition } from "@grpc/grpc-js";

export const ECHO_PATH = "/bench.Echo/Echo";

const identity = (bytes: Buffer) => bytes;

const definition: ServiceDefinition = {
  Echo: {
    path: ECHO_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

const echo: handleUnaryCall<Buffer, Buffer> = (call, callback) => callback(null, call.request);

function main(): void {
  const server = new Server();
  server.addService(definition, { Echo: echo });
  server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, port) => {
    if (err) {
      console.error(`echo-server: ${err.message}`);
      process.exit(1);
    }
    process.stdout.write(`${JSON.stringify({ port })}\n`);
  });
  const stop = () => server.tryShutdown(() => process.exit(0));
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

if (require.main === module) main();
