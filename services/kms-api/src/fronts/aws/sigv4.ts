// AWS Signature Version 4 verification. The canonical request is rebuilt from the headers the client
// signed and signed again with the stored secret by @smithy/signature-v4 (the AWS SDKs' own signer), and
// the two signatures are compared in constant time. Also checked: the credential scope (this region,
// service kms, aws4_request, the date of X-Amz-Date), X-Amz-Date within 15 minutes of our clock, the body
// against X-Amz-Content-Sha256 when sent (else the signature covers the body's hash), that host,
// x-amz-date and x-amz-target are signed, and no session token (only long-term keys exist here).
import { createHash, timingSafeEqual } from "node:crypto";
import { Hash } from "@smithy/hash-node";
import { SignatureV4 } from "@smithy/signature-v4";
import type { Caller } from "../../pipeline/pipeline";
import type { AccessKey } from "./access-keys";
import { AwsAuthError } from "./errors";

export const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;
const REQUIRED_SIGNED_HEADERS = ["host", "x-amz-date", "x-amz-target"];

export interface SignedRequest {
  method: string;
  /** The request target's path ("/"); a query string is refused before verification. */
  path: string;
  /** Lower-case names; repeated headers' values joined with "," as SigV4 canonicalises them. */
  headers: Record<string, string>;
  body: Buffer;
}

export interface VerifierOptions {
  region: string;
  lookup: (accessKeyId: string) => AccessKey | undefined;
  clock?: () => Date;
}

const incomplete = (why: string) => new AwsAuthError("IncompleteSignatureException", why);
const invalid = (why: string) => new AwsAuthError("InvalidSignatureException", why);
const unrecognized = () => new AwsAuthError("UnrecognizedClientException", "The security token included in the request is invalid.");

interface Authorization {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  terminator: string;
  signedHeaders: string[];
  signature: string;
}

/** The Authorization header's parts (IncompleteSignatureException when one is missing or malformed). */
export function parseAuthorization(header: string): Authorization {
  const m = /^(\S+) (.*)$/.exec(header);
  if (!m) throw incomplete("Authorization header is malformed");
  if (m[1] !== "AWS4-HMAC-SHA256") throw incomplete(`Unsupported AWS 'algorithm': ${JSON.stringify(m[1])}; only AWS4-HMAC-SHA256`);
  const parts = new Map<string, string>();
  for (const part of m[2]!.split(/,\s*/)) {
    const at = part.indexOf("=");
    if (at > 0) parts.set(part.slice(0, at).trim(), part.slice(at + 1).trim());
  }
  const credential = parts.get("Credential");
  const signedHeaders = parts.get("SignedHeaders");
  const signature = parts.get("Signature");
  if (credential === undefined || signedHeaders === undefined || signature === undefined) {
    throw incomplete("Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters");
  }
  const scope = credential.split("/");
  if (scope.length !== 5 || scope.some((s) => s === "")) throw incomplete("Credential must be <access key id>/<date>/<region>/<service>/aws4_request");
  const [accessKeyId, date, region, service, terminator] = scope as [string, string, string, string, string];
  if (!/^[0-9a-f]{64}$/.test(signature)) throw incomplete("Signature must be 64 lower-case hex digits");
  const names = signedHeaders.split(";");
  if (names.some((n) => !/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(n))) throw incomplete("SignedHeaders must be lower-case header names separated by ;");
  return { accessKeyId, date, region, service, terminator, signedHeaders: names, signature };
}

/** "20240102T030405Z" as a Date. */
function parseAmzDate(value: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return undefined;
  const date = new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
  return Number.isNaN(date.getTime()) ? undefined : date;
}

export class SigV4Verifier {
  private readonly clock: () => Date;

  constructor(private readonly options: VerifierOptions) {
    this.clock = options.clock ?? (() => new Date());
  }

  /** The caller a correctly signed request comes from; rejects with AwsAuthError (UNAUTHENTICATED). */
  async verify(request: SignedRequest): Promise<Caller> {
    const header = request.headers["authorization"];
    if (header === undefined || header === "") throw new AwsAuthError("MissingAuthenticationTokenException", "Missing Authentication Token");
    const auth = parseAuthorization(header);
    if (request.headers["x-amz-security-token"] !== undefined) {
      throw new AwsAuthError("UnrecognizedClientException", "session tokens are not accepted: sign with a long-term access key");
    }
    const amzDate = request.headers["x-amz-date"];
    if (amzDate === undefined) throw incomplete("Authorization header requires existence of a 'X-Amz-Date' header");
    const signingDate = parseAmzDate(amzDate);
    if (signingDate === undefined) throw incomplete("X-Amz-Date must be YYYYMMDD'T'HHMMSS'Z'");
    if (auth.terminator !== "aws4_request") throw incomplete("Credential should be scoped with a valid terminator: 'aws4_request'");
    if (auth.date !== amzDate.slice(0, 8)) throw invalid("Date in Credential scope does not match YYYYMMDD from X-Amz-Date");
    if (auth.service !== "kms") throw invalid("Credential should be scoped to correct service: 'kms'.");
    if (auth.region !== this.options.region) throw invalid(`Credential should be scoped to a valid region: '${this.options.region}'.`);
    const now = this.clock();
    const skew = signingDate.getTime() - now.getTime();
    if (skew < -MAX_CLOCK_SKEW_MS) throw invalid(`Signature expired: ${amzDate} is now earlier than ${formatAmzDate(new Date(now.getTime() - MAX_CLOCK_SKEW_MS))}`);
    if (skew > MAX_CLOCK_SKEW_MS) throw invalid(`Signature not yet current: ${amzDate} is still later than ${formatAmzDate(new Date(now.getTime() + MAX_CLOCK_SKEW_MS))}`);
    const missing = REQUIRED_SIGNED_HEADERS.filter((h) => !auth.signedHeaders.includes(h));
    if (missing.length > 0) throw incomplete(`SignedHeaders must include ${missing.join(", ")}`);
    const key = this.options.lookup(auth.accessKeyId);
    if (key === undefined) throw unrecognized();
    const sent = request.headers["x-amz-content-sha256"];
    if (sent !== undefined && sent !== createHash("sha256").update(request.body).digest("hex")) {
      throw invalid("The provided 'x-amz-content-sha256' header does not match what was computed.");
    }
    const expected = await this.signature(request, auth, key, signingDate);
    if (!timingSafeEqual(Buffer.from(expected, "hex"), Buffer.from(auth.signature, "hex"))) {
      throw invalid(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
      );
    }
    return { principal: key.principal, mutualTls: false };
  }

  /** The signature of the request's signed headers and body under `key`, as the client should have made it. */
  private async signature(request: SignedRequest, auth: Authorization, key: AccessKey, signingDate: Date): Promise<string> {
    const signer = new SignatureV4({
      credentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey },
      region: auth.region,
      service: auth.service,
      sha256: Hash.bind(null, "sha256"),
      applyChecksum: false, // never add a header the client did not sign
    });
    const headers: Record<string, string> = {};
    for (const name of auth.signedHeaders) {
      const value = request.headers[name];
      if (value !== undefined) headers[name] = value;
    }
    const signed = await signer.sign(
      { method: request.method, protocol: "https:", hostname: headers["host"] ?? "", path: request.path, query: {}, headers, body: request.body },
      { signingDate, signableHeaders: new Set(auth.signedHeaders) },
    );
    const m = /Signature=([0-9a-f]{64})$/.exec(String(signed.headers["authorization"]));
    if (!m) throw new Error("signer produced no signature");
    return m[1]!;
  }
}

export function formatAmzDate(date: Date): string {
  return date.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}
