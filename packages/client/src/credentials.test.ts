import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { TOKEN_FILE_REREAD_MS, tokenFromFile } from "./credentials";

describe("tokenFromFile", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "kms-token-"));

  it("reuses the token for a minute, then reads the rotated one", async () => {
    const file = path.join(dir, "token");
    writeFileSync(file, "first\n");
    const clock = { now: 0 };
    const token = tokenFromFile(file, () => clock.now);
    expect(await token()).toBe("first");
    writeFileSync(file, "second\n");
    clock.now = TOKEN_FILE_REREAD_MS - 1;
    expect(await token()).toBe("first");
    clock.now = TOKEN_FILE_REREAD_MS;
    expect(await token()).toBe("second");
  });

  it("refuses an empty token file", async () => {
    const file = path.join(dir, "empty");
    writeFileSync(file, "\n");
    await expect(tokenFromFile(file)()).rejects.toThrow(`the token file ${file} is empty`);
  });
});
