// Several named callers for one test file: a client CA, a certificate per principal (its URI SAN), the
// TLS settings of a kms-api replica that trusts them, and clients that close together (grants.test.ts,
// dry-run.test.ts).
import { readFileSync } from "node:fs";
import { credentials } from "@grpc/grpc-js";
import { createPromiseClient, kms } from "@kms/proto";
import type { KmsClient } from "./harness";
import { issue, makeCa } from "./certs";

export function principalPki<N extends string>(label: string, principals: Record<N, string>) {
  const pki = makeCa(label);
  const server = issue(pki, "server", { cn: "kms", sans: "IP:127.0.0.1,DNS:localhost" });
  const certs = Object.fromEntries(Object.entries<string>(principals).map(([name, uri]) => [name, issue(pki, name, { sans: `URI:${uri}` })])) as Record<
    N,
    { cert: string; key: string }
  >;
  const clients: KmsClient[] = [];
  return {
    /** kms-api's TLS settings: its server certificate, and client certificates from this CA only. */
    tlsEnv: { KMS_TLS_CERT: server.cert, KMS_TLS_KEY: server.key, KMS_TLS_CLIENT_CA: pki.caCert },
    /** The PEM files a client in another language needs to call as `name`: the CA, its certificate and key. */
    files(name: N): { caCert: string; cert: string; key: string } {
      return { caCert: pki.caCert, ...certs[name] };
    },
    /** A client of the replica at `address`, authenticated as `name`. */
    client(address: string, name: N): KmsClient {
      const who = certs[name];
      const c = createPromiseClient(kms.KeyManagementService, address, credentials.createSsl(readFileSync(pki.caCert), readFileSync(who.key), readFileSync(who.cert)));
      clients.push(c);
      return c;
    },
    close(): void {
      clients.forEach((c) => c.close());
    },
  };
}
