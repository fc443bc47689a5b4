// Wiring only: which handler serves which RPC, plus health and reflection.
// Every RPC goes through unaryHandler (rpc.ts), which parses, audits and maps errors in one place.
import { toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, file_google_protobuf_duration, file_google_protobuf_timestamp } from "@bufbuild/protobuf/wkt";
import type { DescMessage, DescMethod } from "@bufbuild/protobuf";
import { Server } from "@grpc/grpc-js";
import type { UntypedHandleCall } from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import { unimplemented } from "@kms/errors";
import { grpcServiceDefinition, kms, kmsResources } from "@kms/proto";
import type { Authenticator } from "./auth/authenticate";
import type { Services } from "./context";
import { createKey } from "./handlers/create-key";
import { decrypt } from "./handlers/decrypt";
import { describeKey } from "./handlers/describe-key";
import { encrypt } from "./handlers/encrypt";
import { generateDataKey, generateDataKeyWithoutPlaintext } from "./handlers/generate-data-key";
import { listKeys } from "./handlers/list-keys";
import { createAlias, deleteAlias, listAliases, listAliasesByKeyId, updateAlias } from "./handlers/aliases";
import { cancelKeyDeletion, disableKey, enableKey, scheduleKeyDeletion, setDeletionProtection, updateKeyDescription } from "./handlers/lifecycle";
import { reEncrypt } from "./handlers/re-encrypt";
import { batchDecrypt, batchEncrypt, batchGenerateDataKey } from "./handlers/batch";
import { listAuditCheckpoints, listAuditEvents, verifyAuditLog } from "./handlers/audit";
import { getKeyPolicy, setKeyPolicy } from "./handlers/key-policy";
import { listResourceTags, tagResource, untagResource } from "./handlers/tags";
import { createKeyVersion, describeKeyVersion, listKeyVersions, updateRotationPolicy } from "./handlers/versions";
import { asymmetricDecrypt } from "./handlers/asymmetric-decrypt";
import { asymmetricEncrypt } from "./handlers/asymmetric-encrypt";
import { asymmetricSign } from "./handlers/asymmetric-sign";
import { asymmetricVerify } from "./handlers/asymmetric-verify";
import { generateMac } from "./handlers/generate-mac";
import { generateRandom } from "./handlers/generate-random";
import { getPublicKey } from "./handlers/get-public-key";
import { verifyMac } from "./handlers/verify-mac";
import { deleteKeyMaterial } from "./handlers/delete-key-material";
import { getParametersForImport } from "./handlers/get-parameters-for-import";
import { importKeyMaterial } from "./handlers/import-key-material";
import { unaryHandler } from "./rpc";
import type { Handler } from "./rpc";

const SERVICE_NAME = kms.KeyManagementService.typeName;

// Keyed by the proto's localName (camelCase). Missing RPCs answer UNIMPLEMENTED naming themselves.
type Methods = typeof kms.KeyManagementService.method;
const HANDLERS: { [K in keyof Methods]?: Handler<Methods[K]["input"], Methods[K]["output"]> } = {
  createKey,
  describeKey,
  listKeys,
  encrypt,
  decrypt,
  generateDataKey,
  generateDataKeyWithoutPlaintext,
  batchEncrypt,
  batchDecrypt,
  batchGenerateDataKey,
  reEncrypt,
  updateKeyDescription,
  enableKey,
  disableKey,
  scheduleKeyDeletion,
  cancelKeyDeletion,
  setDeletionProtection,
  createKeyVersion,
  describeKeyVersion,
  listKeyVersions,
  updateRotationPolicy,
  createAlias,
  updateAlias,
  deleteAlias,
  listAliases,
  listAliasesByKeyId,
  tagResource,
  untagResource,
  listResourceTags,
  asymmetricSign,
  asymmetricVerify,
  asymmetricEncrypt,
  asymmetricDecrypt,
  getPublicKey,
  generateMac,
  verifyMac,
  generateRandom,
  getKeyPolicy,
  setKeyPolicy,
  listAuditEvents,
  verifyAuditLog,
  listAuditCheckpoints,
  getParametersForImport,
  importKeyMaterial,
  deleteKeyMaterial,
};

export interface KmsServer {
  server: Server;
  health: HealthImplementation;
}

export function buildServer(
  services: Services,
  authenticator: Authenticator,
  options: ConstructorParameters<typeof Server>[0] = {},
): KmsServer {
  const server = new Server(options);
  const implementation: Record<string, UntypedHandleCall> = {};
  for (const method of kms.KeyManagementService.methods as DescMethod[]) {
    const key = method.localName as keyof typeof HANDLERS;
    const handler =
      (HANDLERS[key] as Handler<DescMessage, DescMessage> | undefined) ??
      (async () => {
        throw unimplemented(method.name);
      });
    implementation[method.name] = unaryHandler(method, handler, services, authenticator);
  }
  server.addService(grpcServiceDefinition(kms.KeyManagementService, { raw: true }), implementation);

  const health = new HealthImplementation({ "": "SERVING", [SERVICE_NAME]: "SERVING" });
  health.addToServer(server);

  // Reflection needs the serialized descriptors of the public API and the well-known types it imports.
  const files = [file_google_protobuf_timestamp, file_google_protobuf_duration, kmsResources.file_kms_v1_resources, kms.file_kms_v1_service];
  const reflection = new ReflectionService(
    { kms: { format: "Protocol Buffer 3 FileDescriptorProto", fileDescriptorProtos: files.map((f) => Buffer.from(toBinary(FileDescriptorProtoSchema, f.proto))) } } as never,
  );
  reflection.addToServer(server);
  return { server, health };
}

/** A server with nothing but the health service, for probes that cannot speak TLS. */
export function buildHealthServer(health: HealthImplementation): Server {
  const server = new Server();
  health.addToServer(server);
  return server;
}

export { SERVICE_NAME };
