// The README's configuration table and VARIABLES must name the same variables.
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { VARIABLES } from "./index";

const README = path.resolve(__dirname, "../../../README.md");

function documentedVariables(): Map<string, string> {
  const text = readFileSync(README, "utf8");
  const section = text.slice(text.indexOf("## Configuration"), text.indexOf("\n## ", text.indexOf("## Configuration") + 1));
  const rows = new Map<string, string>();
  for (const m of section.matchAll(/^\| `([A-Z0-9_]+)` \| ([^|]*) \|/gm)) rows.set(m[1]!, m[2]!.trim());
  return rows;
}

describe("README configuration table", () => {
  const documented = documentedVariables();

  it("documents every variable the services read, and no other", () => {
    const expected = [...Object.keys(VARIABLES), "SOFTHSM2_CONF"].sort();
    expect([...documented.keys()].sort()).toEqual(expected);
  });

  it("states each concrete default as the code has it", () => {
    for (const [name, spec] of Object.entries(VARIABLES)) {
      if (spec.default === "" || spec.default.startsWith("(") || spec.default.startsWith("$")) continue;
      expect([name, documented.get(name)]).toEqual([name, `\`${spec.default}\``]);
    }
  });
});

describe("deploy/ (manifests, Dockerfiles, their README)", () => {
  const deploy = path.resolve(__dirname, "../../../deploy");
  const files = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : [path.join(dir, e.name)]));

  it("names only variables the services read", () => {
    // deploy/scripts/ are operators' tools with settings of their own (KMS_NAMESPACE).
    const unknown = files(deploy).filter((file) => !file.includes(`${path.sep}scripts${path.sep}`)).flatMap((file) =>
      [...readFileSync(file, "utf8").matchAll(/\bKMS_[A-Z0-9_]+\b/g)].map((m) => m[0]).filter((name) => !(name in VARIABLES)).map((name) => `${path.relative(deploy, file)}: ${name}`),
    );
    expect(unknown).toEqual([]);
  });
});
