import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { assertPostgresPatched, unpatchedPostgresFiles } from "./postgres-patch";

describe("the postgres.js patch check", () => {
  it("finds the patch applied to the installed postgres.js", () => {
    expect(unpatchedPostgresFiles()).toEqual([]);
    expect(() => assertPostgresPatched()).not.toThrow();
  });

  it("names the files of an unpatched copy (as `npm ci --ignore-scripts` would leave it)", () => {
    const installed = path.resolve(path.dirname(require.resolve("postgres")), "..", "..");
    const copy = mkdtempSync(path.join(os.tmpdir(), "kms-pg-unpatched-"));
    try {
      cpSync(path.join(installed, "cjs"), path.join(copy, "cjs"), { recursive: true });
      const connection = path.join(copy, "cjs/src/connection.js");
      writeFileSync(connection, readFileSync(connection, "utf8").replaceAll("Local patch", "upstream"));
      expect(unpatchedPostgresFiles(copy)).toEqual(["cjs/src/connection.js"]);
      expect(() => assertPostgresPatched(copy)).toThrow("postgres.js is not patched (cjs/src/connection.js): run `npm ci` with its postinstall step (patches/README.md)");
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });
});
