// Transport security of the public port: TLS, mutual TLS (client certificates checked against
// KMS_TLS_CLIENT_CA during the handshake: an unknown CA or an expired certificate never reaches a
// handler), or plaintext on loopback in dev mode (config refuses plaintext anywhere else).
import { ServerCredentials } from "@grpc/grpc-js";
import type { TlsConfig } from "@kms/config";

export function serverCredentials(tls: TlsConfig | undefined): ServerCredentials {
  if (!tls) return ServerCredentials.createInsecure();
  return ServerCredentials.createSsl(tls.clientCa ?? null, [{ private_key: tls.key, cert_chain: tls.cert }], tls.clientCa !== undefined);
}
