// Who is calling: the principal of every request.
//   bearer JWT (when configured and presented) → its `sub`, verified against the JWKS, iss and aud
//   client certificate (mutual TLS)             → its URI SAN (a SPIFFE id; exactly one), else its CN
//   dev mode (plaintext loopback, no JWKS)      → "dev"
import { status } from "@grpc/grpc-js";
import type { Metadata } from "@grpc/grpc-js";
import type { PeerCertificate } from "node:tls";
import { ErrorCode, KmsError } from "@kms/errors";
import type { JwtVerifier } from "./jwt";

export interface Caller {
  principal: string;
  /** True when the caller showed a client certificate the server trusts. */
  mutualTls: boolean;
}

export const DEV_PRINCIPAL = "dev";

const unauthenticated = (why: string) => new KmsError(status.UNAUTHENTICATED, ErrorCode.Unauthenticated, why);

/** The principal a client certificate names. */
export function certificatePrincipal(cert: PeerCertificate): string {
  const uris = (cert.subjectaltname ?? "")
    .split(/,\s*/)
    .filter((san) => san.startsWith("URI:"))
    .map((san) => san.slice(4));
  if (uris.length > 1) throw unauthenticated(`client certificate has ${uris.length} URI SANs; exactly one is allowed`);
  const cn = cert.subject?.CN;
  const name = uris.length === 1 ? uris[0]! : Array.isArray(cn) ? cn[0] : cn;
  if (!name) throw unauthenticated("client certificate has neither a URI SAN nor a subject CN");
  if (name.includes("\u0000") || !name.isWellFormed()) throw unauthenticated("client certificate names a principal that cannot be stored (U+0000 or a lone surrogate)");
  return name;
}

export interface AuthenticatorOptions {
  jwt: JwtVerifier | undefined;
  /** Client certificates are required by the TLS layer. */
  mutualTls: boolean;
}

export class Authenticator {
  constructor(private readonly options: AuthenticatorOptions) {}

  async authenticate(metadata: Metadata, peerCertificate: PeerCertificate | undefined): Promise<Caller> {
    const mutualTls = this.options.mutualTls && peerCertificate !== undefined && Object.keys(peerCertificate).length > 0;
    const header = metadata.get("authorization")[0];
    if (this.options.jwt) {
      if (typeof header === "string" && header !== "") {
        const match = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/.exec(header);
        if (!match) throw unauthenticated("authorization: expected \"Bearer <JWT>\"");
        return { principal: await this.options.jwt.verify(match[1]!), mutualTls };
      }
      if (!mutualTls) throw unauthenticated("a bearer token is required");
    }
    if (mutualTls) return { principal: certificatePrincipal(peerCertificate!), mutualTls: true };
    if (this.options.mutualTls) throw unauthenticated("a client certificate is required");
    return { principal: DEV_PRINCIPAL, mutualTls: false };
  }
}
