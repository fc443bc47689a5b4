// No module may import itself back, by value or by type: a value cycle makes one side see the other's
// exports as undefined while the modules load, and a type cycle ties two modules' designs together
// (the kms-api Services bag used to). And the SDK and the CLI use the public API only, never the
// worker protocol (@kms/proto/internal). Checked by dependency-cruiser (.dependency-cruiser.cjs, also
// `npm run lint:deps`), whose JSON report this reads; workspaces resolve to their sources
// (tsconfig.deps.json), so imports across packages count.
import { execFileSync } from "node:child_process";
import path from "node:path";

const ROOT = path.resolve(__dirname, "..", "..");
const DEPCRUISE = path.join(ROOT, "node_modules", ".bin", "depcruise");

interface Report {
  summary: { totalCruised: number; violations: { rule: { name: string }; from: string; cycle?: { name: string }[] }[] };
}

function cruise(args: string[]): Report {
  // Exit code 0 either way with --output-type json; violations are in the report.
  const out = execFileSync(DEPCRUISE, ["--config", ".dependency-cruiser.cjs", "--output-type", "json", ...args], { cwd: ROOT, maxBuffer: 64 << 20 });
  return JSON.parse(out.toString()) as Report;
}

const cycleOf = (v: Report["summary"]["violations"][number]) => [v.from, ...(v.cycle ?? []).map((c) => c.name)].map((f) => path.basename(f));

describe("import cycles", () => {
  it("has none in any package, service, test or benchmark, and the SDK uses the public API only", () => {
    const report = cruise(["packages", "services", "test", "bench"]);
    expect(report.summary.totalCruised).toBeGreaterThan(300);
    expect(report.summary.violations.map((v) => [v.rule.name, ...cycleOf(v)])).toEqual([]);
  });

  it("finds one when there is one, by value or by type (the check itself)", () => {
    const report = cruise(["--exclude", "(^|/)(dist|gen|node_modules)/", "test/structure/cycle-fixture"]);
    expect(report.summary.violations.map((v) => [v.rule.name, ...cycleOf(v)])).toEqual([
      ["no-circular", "a.ts", "b.ts", "a.ts"],
      ["no-circular", "b.ts", "c.ts", "b.ts"],
    ]);
  });
});
