import { Metadata, status } from "@grpc/grpc-js";
import type { PeerCertificate } from "node:tls";
import { KmsError } from "@kms/errors";
import { Authenticator, certificatePrincipal } from "./authenticate";
import type { JwtVerifier } from "./jwt";

const cert = (subjectaltname: string | undefined, cn: string | string[] | undefined) =>
  ({ subjectaltname, subject: cn === undefined ? {} : { CN: cn } }) as unknown as PeerCertificate;

const refusal = (fn: () => unknown): [number, string] => {
  try {
    fn();
  } catch (err) {
    if (err instanceof KmsError) return [err.status, err.message];
    throw err;
  }
  throw new Error("expected a KmsError");
};

describe("certificatePrincipal", () => {
  it("takes the one URI SAN as it is", () => {
    expect(certificatePrincipal(cert("DNS:x, URI:spiffe://example.org/ns/a/sa/b", "ignored"))).toBe("spiffe://example.org/ns/a/sa/b");
  });

  it("prefixes a CN with cn:, so a CN spelled like a SPIFFE id is not that id", () => {
    expect(certificatePrincipal(cert(undefined, "billing"))).toBe("cn:billing");
    expect(certificatePrincipal(cert("DNS:x", "spiffe://example.org/admin"))).toBe("cn:spiffe://example.org/admin");
  });

  it("refuses a URI SAN in the cn: scheme, two URI SANs and two CNs", () => {
    expect(refusal(() => certificatePrincipal(cert("URI:cn:billing", "x")))).toEqual([
      status.UNAUTHENTICATED,
      "client certificate has a URI SAN in the cn: scheme, which names CN-derived principals",
    ]);
    expect(refusal(() => certificatePrincipal(cert("URI:CN:billing", "x")))[0]).toBe(status.UNAUTHENTICATED);
    expect(refusal(() => certificatePrincipal(cert("URI:kms:system", "x")))).toEqual([
      status.UNAUTHENTICATED,
      "client certificate has a URI SAN in the kms: scheme, which names the service itself",
    ]);
    expect(refusal(() => certificatePrincipal(cert("URI:spiffe://a/x, URI:spiffe://a/y", "x")))[1]).toBe("client certificate has 2 URI SANs; exactly one is allowed");
    expect(refusal(() => certificatePrincipal(cert(undefined, ["a", "b"])))[1]).toBe("client certificate has 2 subject CNs and no URI SAN; exactly one is allowed");
  });

  it("reads a quoted SAN value whole: a DNS SAN holding \", URI:…\" is not a URI SAN", () => {
    // How Node writes SAN values with a comma (CVE-2021-44532): JSON-quoted, the comma escaped.
    expect(certificatePrincipal(cert('DNS:"x\\u002c URI:spiffe://e/admin", URI:spiffe://e/web', "x"))).toBe("spiffe://e/web");
    expect(certificatePrincipal(cert('URI:"spiffe://e/a\\u002cb"', "x"))).toBe("spiffe://e/a,b");
  });
});

describe("Authenticator", () => {
  const jwt: JwtVerifier = { verify: async () => "system:serviceaccount:apps:web" };
  const withToken = () => {
    const md = new Metadata();
    md.set("authorization", "Bearer a.b.c");
    return md;
  };
  const alice = cert("URI:spiffe://e/alice", "x");

  it("sets mutualTls only when the principal came from the certificate", async () => {
    const a = new Authenticator({ jwt, mutualTls: true });
    expect(await a.authenticate(withToken(), alice)).toEqual({ principal: "system:serviceaccount:apps:web", mutualTls: false });
    expect(await a.authenticate(new Metadata(), alice)).toEqual({ principal: "spiffe://e/alice", mutualTls: true });
  });

  it("gives a caller without credentials the configured anonymous principal, else refuses it", async () => {
    expect(await new Authenticator({ jwt: undefined, mutualTls: false, anonymous: "anyone" }).authenticate(new Metadata(), undefined)).toEqual({
      principal: "anyone",
      mutualTls: false,
    });
    await expect(new Authenticator({ jwt: undefined, mutualTls: false }).authenticate(new Metadata(), undefined)).rejects.toMatchObject({
      status: status.UNAUTHENTICATED,
      message: "no credentials were presented",
    });
  });
});
