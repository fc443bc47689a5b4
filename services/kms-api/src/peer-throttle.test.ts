import { status } from "@grpc/grpc-js";
import type { PeerCertificate } from "node:tls";
import { ErrorCode, KmsError } from "@kms/errors";
import { PeerThrottle, peerOf } from "./peer-throttle";

const unauthenticated = () => Promise.reject(new KmsError(ErrorCode.Unauthenticated, "bearer token is not valid for this service"));

async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "OK";
  } catch (err) {
    if (!(err instanceof KmsError)) return `not a KmsError: ${(err as Error).message}`;
    return `${err.status} ${err.code} ${err.message}`;
  }
}

const THROTTLED = `${status.RESOURCE_EXHAUSTED} Throttling too many failed authentications from this peer; retry later`;
const UNAUTHENTICATED = `${status.UNAUTHENTICATED} Unauthenticated bearer token is not valid for this service`;

describe("peerOf", () => {
  it("names the certificate's fingerprint when there is one, else the address without its port", () => {
    expect(peerOf("10.1.2.3:54321", undefined)).toBe("ip:10.1.2.3");
    expect(peerOf("::1:54321", undefined)).toBe("ip:::1");
    expect(peerOf("unknown", undefined)).toBe("ip:unknown");
    expect(peerOf("10.1.2.3:54321", { fingerprint256: "AB:CD" } as PeerCertificate)).toBe("cert:AB:CD");
  });
});

describe("PeerThrottle", () => {
  it("refuses a peer that spent its budget on failures without running the authentication; others are not affected", async () => {
    let now = 0;
    const throttle = new PeerThrottle({ authFailuresPerSecond: 2, authFailureBurst: 3 }, () => now);
    let runs = 0;
    const failing = () => {
      runs++;
      return unauthenticated();
    };
    const answers = [];
    for (let i = 0; i < 5; i++) answers.push(await outcome(throttle.authenticate("ip:a", failing)));
    expect(answers).toEqual([UNAUTHENTICATED, UNAUTHENTICATED, UNAUTHENTICATED, THROTTLED, THROTTLED]);
    expect(runs).toBe(3);
    // Even a good credential from that peer is not looked at now.
    expect(await outcome(throttle.authenticate("ip:a", async () => "alice"))).toBe(THROTTLED);
    expect(await outcome(throttle.authenticate("ip:b", async () => "bob"))).toBe("OK");
    now += 500; // one back at 2/s
    expect(await outcome(throttle.authenticate("ip:a", async () => "alice"))).toBe("OK");
    expect(throttle.remaining("ip:a")).toBe(1); // success gave its token back
  });

  it("successes and other failures cost nothing", async () => {
    const throttle = new PeerThrottle({ authFailuresPerSecond: 1, authFailureBurst: 2 }, () => 0);
    for (let i = 0; i < 10; i++) expect(await throttle.authenticate("ip:a", async () => "alice")).toBe("alice");
    expect(await outcome(throttle.authenticate("ip:a", () => Promise.reject(new Error("jwks down"))))).toBe("not a KmsError: jwks down");
    expect(throttle.remaining("ip:a")).toBe(2);
  });

  it("holds a token while an authentication runs, so concurrent attempts cannot all start before a failure counts", async () => {
    const throttle = new PeerThrottle({ authFailuresPerSecond: 1, authFailureBurst: 3 }, () => 0);
    let started = 0;
    const slowFailure = () => {
      started++;
      return new Promise<string>((_, reject) => setImmediate(() => reject(new KmsError(ErrorCode.Unauthenticated, "bearer token is not valid for this service"))));
    };
    const answers = await Promise.all(Array.from({ length: 50 }, () => outcome(throttle.authenticate("ip:a", slowFailure))));
    expect(started).toBe(3);
    expect(answers.filter((a) => a === UNAUTHENTICATED)).toHaveLength(3);
    expect(answers.filter((a) => a === THROTTLED)).toHaveLength(47);
  });
});
