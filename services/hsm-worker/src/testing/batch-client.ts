// The worker's hot operations as a test calls them: each a one-operation batch on BatchStream (the only way
// they are reached), its error result thrown as the ServiceError a call with that status would give.
import { create } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { credentials, Client, Metadata } from "@grpc/grpc-js";
import type { ServiceError } from "@grpc/grpc-js";
import { ERROR_CODE_KEY } from "@kms/errors";
import { openBidiStream } from "@kms/proto";
import { hsm } from "@kms/proto/internal";

type Result = hsm.OperationResult["result"];
type Case = Exclude<NonNullable<Result["case"]>, "error">;
type ResponseOf<C extends Case> = Extract<Result, { case: C }>["value"];

export interface BatchClient {
  encrypt(request: MessageInitShape<typeof hsm.EncryptRequestSchema>): Promise<hsm.EncryptResponse>;
  decrypt(request: MessageInitShape<typeof hsm.DecryptRequestSchema>): Promise<hsm.DecryptResponse>;
  reEncrypt(request: MessageInitShape<typeof hsm.ReEncryptRequestSchema>): Promise<hsm.ReEncryptResponse>;
  generateDataKey(request: MessageInitShape<typeof hsm.GenerateDataKeyRequestSchema>): Promise<hsm.GenerateDataKeyResponse>;
  sign(request: MessageInitShape<typeof hsm.SignRequestSchema>): Promise<hsm.SignResponse>;
  generateMac(request: MessageInitShape<typeof hsm.GenerateMacRequestSchema>): Promise<hsm.GenerateMacResponse>;
  close(): void;
}

export function batchClient(socketPath: string): BatchClient {
  const channel = new Client(`unix://${socketPath}`, credentials.createInsecure());
  let nextId = 1;
  const run = <C extends Case>(kind: C, request: unknown): Promise<ResponseOf<C>> =>
    new Promise<ResponseOf<C>>((resolve, reject) => {
      const call = openBidiStream(channel, hsm.HsmWorkerService.method.batchStream);
      const id = nextId++;
      call.on("error", reject);
      call.on("data", (answer: hsm.BatchStreamResponse) => {
        call.end();
        const result = answer.results[0]?.result;
        if (result?.case === kind) return (resolve as (value: unknown) => void)(result.value);
        if (result?.case !== "error") return reject(new Error(`worker answered ${String(result?.case)} to ${kind}`));
        const metadata = new Metadata();
        metadata.set(ERROR_CODE_KEY, result.value.errorCode);
        const err: ServiceError = Object.assign(new Error(result.value.message), { code: result.value.code, details: result.value.message, metadata });
        reject(err);
      });
      call.write(create(hsm.BatchStreamRequestSchema, { id, operations: [{ op: { case: kind, value: request } } as MessageInitShape<typeof hsm.OperationSchema>] }));
    });
  return {
    encrypt: (request) => run("encrypt", request),
    decrypt: (request) => run("decrypt", request),
    reEncrypt: (request) => run("reEncrypt", request),
    generateDataKey: (request) => run("generateDataKey", request),
    sign: (request) => run("sign", request),
    generateMac: (request) => run("generateMac", request),
    close: () => channel.close(),
  };
}
