import { mkdtempSync, readFileSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ensureSoftHsmToken } from "./index";

describe("ensureSoftHsmToken", () => {
  it("creates a token once and finds it again", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "softhsm-"));
    const first = ensureSoftHsmToken(dir, "unit");
    expect(first.created).toBe(true);
    expect(statSync(first.pinFile).mode & 0o777).toBe(0o600);
    const pin = readFileSync(first.pinFile, "utf8");
    expect(pin).toMatch(/^[0-9a-f]{24}$/);

    const second = ensureSoftHsmToken(dir, "unit");
    expect(second.created).toBe(false);
    expect(readFileSync(second.pinFile, "utf8")).toBe(pin);
  });
});
