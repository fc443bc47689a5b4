import { status } from "@grpc/grpc-js";
import type { PeerCertificate } from "node:tls";
import { ErrorCode, KmsError } from "@kms/errors";
import { PeerThrottle, peerOf, peerOfAddress } from "./peer-throttle";

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

  it("groups an IPv6 address by its /64, so one host cannot be 2^64 peers; an IPv4-mapped one is its IPv4", () => {
    const peers = ["2001:db8:1:2::1:54321", "2001:db8:1:2:ffff:ffff:ffff:fffe:443", "2001:0db8:0001:0002:0:0:0:9:1"].map((a) => peerOf(a, undefined));
    expect(new Set(peers)).toEqual(new Set(["ip:2001:db8:1:2::/64"]));
    expect(peerOf("2001:db8:1:3::1:54321", undefined)).toBe("ip:2001:db8:1:3::/64");
    expect(peerOfAddress("fe80::1%eth0")).toBe("ip:fe80:0:0:0::/64");
    expect(peerOfAddress("::ffff:10.1.2.3")).toBe("ip:10.1.2.3");
    expect(peerOfAddress("64:ff9b::10.1.2.3")).toBe("ip:64:ff9b:0:0::/64");
    expect(peerOfAddress("::1")).toBe("ip:::1");
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
