// The access keys file: its format, and that a file others may read is refused and a bad reload keeps the keys.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { AccessKeys, AccessKeysError, parseAccessKeys, readAccessKeys } from "./access-keys";

const ID = "AKIAIOSFODNN7EXAMPLE";
const SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const silent = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };

describe("parseAccessKeys", () => {
  it("reads one key a line; blank lines and comments are skipped", () => {
    const keys = parseAccessKeys(`# keys\n\n${ID} ${SECRET} spiffe://example.org/app\n  AKIA2222222222222222\t${SECRET}x   ops  \n`);
    expect([...keys.values()]).toEqual([
      { accessKeyId: ID, secretAccessKey: SECRET, principal: "spiffe://example.org/app" },
      { accessKeyId: "AKIA2222222222222222", secretAccessKey: `${SECRET}x`, principal: "ops" },
    ]);
  });

  it("names the bad line, never its secret", () => {
    for (const [text, problem] of [
      [`${ID} ${SECRET}`, /line 1: expected/],
      [`akia-lower ${SECRET} app`, /line 1: the access key id/],
      [`${ID} short app`, /line 1: the secret/],
      [`${ID} ${SECRET} cn:someone`, /line 1: the principal/],
      [`${ID} ${SECRET} *`, /line 1: the principal/],
      [`${ID} ${SECRET} a\n${ID} ${SECRET} b`, /line 2: access key id .* twice/],
    ] as const) {
      let message = "";
      try {
        parseAccessKeys(text);
      } catch (err) {
        expect(err).toBeInstanceOf(AccessKeysError);
        message = (err as Error).message;
      }
      expect(message).toMatch(problem);
      expect(message).not.toContain(SECRET);
    }
  });
});

describe("the file", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), "aws-keys-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("is refused when group or others may read it", () => {
    const file = path.join(dir, "keys");
    writeFileSync(file, `${ID} ${SECRET} app\n`, { mode: 0o600 });
    expect(readAccessKeys(file).get(ID)?.principal).toBe("app");
    chmodSync(file, 0o640);
    expect(() => readAccessKeys(file)).toThrow(/readable by others \(mode 640\)/);
  });

  it("keeps the keys it has when a reload fails, and takes the new ones when it succeeds", () => {
    const file = path.join(dir, "keys");
    writeFileSync(file, `${ID} ${SECRET} app\n`, { mode: 0o600 });
    const keys = new AccessKeys(file, silent);
    writeFileSync(file, "not a key line\n");
    expect(keys.reload("test")).toBe(false);
    expect(keys.get(ID)?.principal).toBe("app");
    writeFileSync(file, `AKIA2222222222222222 ${SECRET} ops\n`);
    expect(keys.reload("test")).toBe(true);
    expect([keys.get(ID), keys.get("AKIA2222222222222222")?.principal]).toEqual([undefined, "ops"]);
  });
});
