import { randomBytes, randomUUID } from "node:crypto";
import { GrantTokens } from "./grant-tokens";

describe("GrantTokens", () => {
  const tokens = new GrantTokens(randomBytes(32));

  it("gives back the grant id of a token it issued, the same token each time", () => {
    const id = randomUUID();
    expect(tokens.grantIdOf(tokens.issue(id))).toBe(id);
    expect(tokens.issue(id)).toBe(tokens.issue(id));
  });

  it("knows nothing of a token changed in one character, issued under another secret, or malformed", () => {
    const token = tokens.issue(randomUUID());
    const last = token.at(-1) === "A" ? "B" : "A";
    expect(tokens.grantIdOf(token.slice(0, -1) + last)).toBeUndefined();
    expect(tokens.grantIdOf(new GrantTokens(randomBytes(32)).issue(randomUUID()))).toBeUndefined();
    for (const bad of ["", "kmsgt1.", "kmsgt1.!!!", "x".repeat(300), token.slice(7)]) expect(tokens.grantIdOf(bad)).toBeUndefined();
  });
});
