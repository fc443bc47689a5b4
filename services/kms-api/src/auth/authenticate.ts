// Who is calling: the principal of every request. Each source has a namespace of its own, so that no
// source can name a principal of another (a CN spelled like a SPIFFE id is not that SPIFFE id):
//   bearer JWT (when configured and presented) → its `sub`, verified against the JWKS, iss, aud and exp
//   client certificate (mutual TLS)             → its URI SAN (a SPIFFE id; exactly one), else "cn:" + its CN
//   no credentials, none required               → the configured anonymous principal (KMS_ANONYMOUS_PRINCIPAL
//                                                  on TLS) or "dev" (KMS_INSECURE_DEV_MODE, plaintext)
import type { Metadata } from "@grpc/grpc-js";
import type { PeerCertificate } from "node:tls";
import { ErrorCode, KmsError } from "@kms/errors";
import type { JwtVerifier } from "./jwt";
import { CN_PREFIX, SERVICE_PREFIX } from "./principals";

export interface Caller {
  principal: string;
  /** True only when the principal came from a client certificate the server trusts (kms:MutualTLS). */
  mutualTls: boolean;
}

export const DEV_PRINCIPAL = "dev";
const unauthenticated = (why: string) => new KmsError(ErrorCode.Unauthenticated, why);

/** The SAN entries of one type; Node quotes (JSON-style) a value holding a comma, quote or control character. */
function sanValues(cert: PeerCertificate, type: string): string[] {
  const out: string[] = [];
  for (const entry of (cert.subjectaltname ?? "").split(", ")) {
    if (!entry.startsWith(`${type}:`)) continue;
    const value = entry.slice(type.length + 1);
    try {
      out.push(value.startsWith('"') ? (JSON.parse(value) as string) : value);
    } catch {
      throw unauthenticated(`client certificate has a ${type} SAN that cannot be read`);
    }
  }
  return out;
}

/** The principal a client certificate names. */
export function certificatePrincipal(cert: PeerCertificate): string {
  const uris = sanValues(cert, "URI");
  if (uris.length > 1) throw unauthenticated(`client certificate has ${uris.length} URI SANs; exactly one is allowed`);
  let name: string;
  if (uris.length === 1) {
    name = uris[0]!;
    if (name.toLowerCase().startsWith(CN_PREFIX)) throw unauthenticated(`client certificate has a URI SAN in the ${CN_PREFIX} scheme, which names CN-derived principals`);
    if (name.toLowerCase().startsWith(SERVICE_PREFIX)) throw unauthenticated(`client certificate has a URI SAN in the ${SERVICE_PREFIX} scheme, which names the service itself`);
  } else {
    const cn = cert.subject?.CN;
    if (Array.isArray(cn)) throw unauthenticated(`client certificate has ${cn.length} subject CNs and no URI SAN; exactly one is allowed`);
    if (!cn) throw unauthenticated("client certificate has neither a URI SAN nor a subject CN");
    name = `${CN_PREFIX}${cn}`;
  }
  if (name.includes("\u0000") || !name.isWellFormed()) throw unauthenticated("client certificate names a principal that cannot be stored (U+0000 or a lone surrogate)");
  return name;
}

export interface AuthenticatorOptions {
  jwt: JwtVerifier | undefined;
  /** Client certificates are required by the TLS layer. */
  mutualTls: boolean;
  /**
   * The principal of a caller that shows no credentials, when the configuration requires none (dev mode:
   * "dev"; anonymous TLS: KMS_ANONYMOUS_PRINCIPAL). Undefined: such a caller is UNAUTHENTICATED.
   */
  anonymous?: string | undefined;
}

export class Authenticator {
  constructor(private readonly options: AuthenticatorOptions) {}

  async authenticate(metadata: Metadata, peerCertificate: PeerCertificate | undefined): Promise<Caller> {
    const certified = this.options.mutualTls && peerCertificate !== undefined && Object.keys(peerCertificate).length > 0;
    const header = metadata.get("authorization")[0];
    if (this.options.jwt) {
      if (typeof header === "string" && header !== "") {
        const match = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/.exec(header);
        if (!match) throw unauthenticated("authorization: expected \"Bearer <JWT>\"");
        // The principal is the token's, not the certificate's: kms:MutualTLS does not vouch for it.
        return { principal: await this.options.jwt.verify(match[1]!), mutualTls: false };
      }
      if (!certified) throw unauthenticated("a bearer token is required");
    }
    if (certified) return { principal: certificatePrincipal(peerCertificate!), mutualTls: true };
    if (this.options.mutualTls) throw unauthenticated("a client certificate is required");
    if (this.options.anonymous === undefined) throw unauthenticated("no credentials were presented");
    return { principal: this.options.anonymous, mutualTls: false };
  }
}
