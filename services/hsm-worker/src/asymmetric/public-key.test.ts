// parsePublicKey is what the worker's Verify runs on the public_key it is sent: whatever reaches the worker
// socket must get INVALID_ARGUMENT, never take the process down.
import { spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { KmsError } from "@kms/errors";
import { parsePublicKey } from "./public-key";

/** P-256 SubjectPublicKeyInfo whose BIT STRING holds the single byte 00: the point at infinity. */
const IDENTITY_P256 = Buffer.from("3019301306072a8648ce3d020106082a8648ce3d03010703020000", "hex");
const P256 = { kind: "ec", curve: "P-256" } as const;

describe("parsePublicKey", () => {
  it("is what the refusal guards against: Node aborts the process reading that key's details", () => {
    const probe = `const k = require("node:crypto").createPublicKey({ key: Buffer.from("${IDENTITY_P256.toString("hex")}", "hex"), format: "der", type: "spki" }); k.asymmetricKeyDetails;`;
    const run = spawnSync(process.execPath, ["-e", probe], { encoding: "utf8" });
    // Killed by SIGABRT on a native assertion, not a JavaScript error that a handler could catch.
    expect(run.signal).toBe("SIGABRT");
    expect(run.stderr).toMatch(/Assertion failed/);
  });

  it("refuses the point at infinity with INVALID_ARGUMENT naming the field", () => {
    const err = (() => {
      try {
        parsePublicKey(IDENTITY_P256, P256, "public_key");
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(KmsError);
    expect((err as KmsError).status).toBe(status.INVALID_ARGUMENT);
    expect((err as KmsError).message).toMatch(/^public_key: /);
  });

  it("still takes a real P-256 key and refuses another curve", () => {
    const der = (curve: string) => generateKeyPairSync("ec", { namedCurve: curve }).publicKey.export({ type: "spki", format: "der" });
    expect(parsePublicKey(der("prime256v1"), P256).asymmetricKeyType).toBe("ec");
    expect(() => parsePublicKey(der("secp384r1"), P256)).toThrow(/does not match the key spec/);
  });
});
