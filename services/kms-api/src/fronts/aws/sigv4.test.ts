// SigV4 verification against requests signed by @smithy/signature-v4 (the AWS SDKs' signer), each part
// of them then changed: every change must be refused, with AWS's exception name.
import { createHash } from "node:crypto";
import { Hash } from "@smithy/hash-node";
import { SignatureV4 } from "@smithy/signature-v4";
import type { AccessKey } from "./access-keys";
import { AwsAuthError } from "./errors";
import { MAX_CLOCK_SKEW_MS, SigV4Verifier, formatAmzDate, parseAuthorization } from "./sigv4";
import type { SignedRequest } from "./sigv4";

const key: AccessKey = { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", principal: "app" };
const now = new Date("2030-05-06T07:08:09Z");
const body = JSON.stringify({ KeyId: "alias/app", Plaintext: "c2VjcmV0" });

async function signed(o: { secret?: string; region?: string; service?: string; date?: Date; sessionToken?: string; extra?: Record<string, string> } = {}): Promise<SignedRequest> {
  const signer = new SignatureV4({
    credentials: { accessKeyId: key.accessKeyId, secretAccessKey: o.secret ?? key.secretAccessKey, ...(o.sessionToken ? { sessionToken: o.sessionToken } : {}) },
    region: o.region ?? "eu-central-1",
    service: o.service ?? "kms",
    sha256: Hash.bind(null, "sha256"),
  });
  const headers = { host: "kms.example.com:7301", "content-type": "application/x-amz-json-1.1", "x-amz-target": "TrentService.Encrypt", ...o.extra };
  const r = await signer.sign({ method: "POST", protocol: "https:", hostname: "kms.example.com", port: 7301, path: "/", query: {}, headers, body }, { signingDate: o.date ?? now });
  const lower = Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k.toLowerCase(), String(v)]));
  return { method: "POST", path: "/", headers: lower, body: Buffer.from(body) };
}

const verifier = (clock = now) => new SigV4Verifier({ region: "eu-central-1", lookup: (id) => (id === key.accessKeyId ? key : undefined), clock: () => clock });

async function refusal(request: SignedRequest, v = verifier()): Promise<string> {
  try {
    await v.verify(request);
  } catch (err) {
    if (err instanceof AwsAuthError) return err.awsType;
    throw err;
  }
  return "accepted";
}

const withHeader = (r: SignedRequest, name: string, value: string | undefined): SignedRequest => {
  const headers = { ...r.headers };
  if (value === undefined) delete headers[name];
  else headers[name] = value;
  return { ...r, headers };
};

describe("SigV4Verifier", () => {
  it("accepts what the SDK's signer signed, as the key's principal", async () => {
    expect(await verifier().verify(await signed())).toEqual({ principal: "app", mutualTls: false });
  });

  it("refuses each signed part changed: body, target, host, content type, date, signature", async () => {
    const r = await signed();
    expect(await refusal({ ...r, body: Buffer.from(body.replace("alias/app", "alias/other")) })).toBe("InvalidSignatureException");
    expect(await refusal(withHeader(r, "x-amz-target", "TrentService.Decrypt"))).toBe("InvalidSignatureException");
    expect(await refusal(withHeader(r, "host", "evil.example.com:7301"))).toBe("InvalidSignatureException");
    expect(await refusal(withHeader(r, "content-type", "application/x-amz-json-1.0"))).toBe("InvalidSignatureException");
    expect(await refusal(withHeader(r, "x-amz-date", formatAmzDate(new Date(now.getTime() + 1000))))).toBe("InvalidSignatureException");
    const flipped = r.headers["authorization"]!.replace(/Signature=(.)/, (_, c: string) => `Signature=${c === "0" ? "1" : "0"}`);
    expect(await refusal(withHeader(r, "authorization", flipped))).toBe("InvalidSignatureException");
  });

  it("refuses another secret, an unknown access key, a session token", async () => {
    expect(await refusal(await signed({ secret: key.secretAccessKey + "x" }))).toBe("InvalidSignatureException");
    const r = await signed();
    expect(await refusal(withHeader(r, "authorization", r.headers["authorization"]!.replace(key.accessKeyId, "AKIAUNKNOWNUNKNOWN00")))).toBe(
      "UnrecognizedClientException",
    );
    expect(await refusal(await signed({ sessionToken: "token" }))).toBe("UnrecognizedClientException");
  });

  it("refuses a credential scoped to another region or service, or to another day than X-Amz-Date", async () => {
    expect(await refusal(await signed({ region: "us-east-1" }))).toBe("InvalidSignatureException");
    expect(await refusal(await signed({ service: "s3" }))).toBe("InvalidSignatureException");
    const r = await signed();
    expect(await refusal(withHeader(r, "authorization", r.headers["authorization"]!.replace("/20300506/", "/20300505/")))).toBe("InvalidSignatureException");
  });

  it("accepts a date up to 15 minutes off our clock and refuses one further off", async () => {
    const r = await signed();
    expect(await refusal(r, verifier(new Date(now.getTime() + MAX_CLOCK_SKEW_MS)))).toBe("accepted");
    expect(await refusal(r, verifier(new Date(now.getTime() - MAX_CLOCK_SKEW_MS)))).toBe("accepted");
    expect(await refusal(r, verifier(new Date(now.getTime() + MAX_CLOCK_SKEW_MS + 1000)))).toBe("InvalidSignatureException");
    expect(await refusal(r, verifier(new Date(now.getTime() - MAX_CLOCK_SKEW_MS - 1000)))).toBe("InvalidSignatureException");
  });

  it("checks X-Amz-Content-Sha256 against the body when sent", async () => {
    const other = createHash("sha256").update(body + " ").digest("hex");
    expect(await refusal(await signed({ extra: { "x-amz-content-sha256": other } }))).toBe("InvalidSignatureException");
    const right = createHash("sha256").update(body).digest("hex");
    expect(await refusal(await signed({ extra: { "x-amz-content-sha256": right } }))).toBe("accepted");
  });

  it("names a missing or malformed signature as AWS does", async () => {
    const r = await signed();
    expect(await refusal(withHeader(r, "authorization", undefined))).toBe("MissingAuthenticationTokenException");
    expect(await refusal(withHeader(r, "authorization", "AWS4-ECDSA-P256-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, Signature=00"))).toBe(
      "IncompleteSignatureException",
    );
    expect(await refusal(withHeader(r, "authorization", r.headers["authorization"]!.replace(/SignedHeaders=[^,]+/, "SignedHeaders=host;x-amz-date")))).toBe(
      "IncompleteSignatureException",
    );
    expect(await refusal(withHeader(r, "x-amz-date", undefined))).toBe("IncompleteSignatureException");
    expect(await refusal(withHeader(r, "x-amz-date", "2030-05-06T07:08:09Z"))).toBe("IncompleteSignatureException");
  });

  it("parses the Authorization header's parts", () => {
    const sig = "a".repeat(64);
    expect(parseAuthorization(`AWS4-HMAC-SHA256 Credential=AKID/20300506/eu-central-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=${sig}`)).toEqual({
      accessKeyId: "AKID",
      date: "20300506",
      region: "eu-central-1",
      service: "kms",
      terminator: "aws4_request",
      signedHeaders: ["host", "x-amz-date"],
      signature: sig,
    });
    expect(() => parseAuthorization("AWS4-HMAC-SHA256 Credential=AKID/20300506/eu-central-1/kms, SignedHeaders=host, Signature=" + sig)).toThrow(AwsAuthError);
    expect(() => parseAuthorization("AWS4-HMAC-SHA256 Credential=A/B/C/D/E, SignedHeaders=Host, Signature=" + sig)).toThrow(AwsAuthError);
  });
});
