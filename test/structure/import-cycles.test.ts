// No module may import itself back at run time: a cycle of value imports makes one side see the other's
// exports as undefined while the modules load, depending on which file starts first. Type-only imports
// (`import type`, `export type`) are erased by the compiler and do not count; the cycles that remain at
// the type level (the kms-api Services bag) are the architecture issue's to remove.
import { readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import ts from "typescript";

const ROOT = path.resolve(__dirname, "..", "..");
const SOURCE_DIRS = ["packages", "services"].flatMap((top) =>
  readdirSync(path.join(ROOT, top)).map((name) => path.join(ROOT, top, name, "src")).filter((dir) => statSync(dir, { throwIfNoEntry: false })?.isDirectory()),
);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === "gen" ? [] : sourceFiles(full);
    return e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") ? [full] : [];
  });
}

/** The files `file` imports or re-exports by value through a relative path. */
function valueImports(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, false);
  const targets: string[] = [];
  for (const statement of source.statements) {
    let specifier: ts.Expression | undefined;
    if (ts.isImportDeclaration(statement)) {
      const clause = statement.importClause;
      if (clause?.isTypeOnly) continue;
      const named = clause?.namedBindings;
      // `import { type A, type B } from` is erased too.
      if (clause && !clause.name && named && ts.isNamedImports(named) && named.elements.length > 0 && named.elements.every((e) => e.isTypeOnly)) continue;
      specifier = statement.moduleSpecifier;
    } else if (ts.isExportDeclaration(statement)) {
      if (statement.isTypeOnly) continue;
      specifier = statement.moduleSpecifier;
    }
    if (!specifier || !ts.isStringLiteral(specifier) || !specifier.text.startsWith(".")) continue;
    const base = path.resolve(path.dirname(file), specifier.text);
    const resolved = [`${base}.ts`, path.join(base, "index.ts")].find((f) => statSync(f, { throwIfNoEntry: false })?.isFile());
    if (resolved) targets.push(resolved);
  }
  return targets;
}

/** Every cycle found by a depth-first walk, each as the files along it. */
function cycles(files: string[]): string[][] {
  const graph = new Map(files.map((f) => [f, valueImports(f)]));
  const found: string[][] = [];
  const state = new Map<string, "active" | "done">();
  const stack: string[] = [];
  const visit = (file: string) => {
    state.set(file, "active");
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === "active") found.push([...stack.slice(stack.indexOf(next)), next].map((f) => path.relative(ROOT, f)));
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(file, "done");
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  return found;
}

describe("import cycles", () => {
  const files = SOURCE_DIRS.flatMap(sourceFiles);

  it("reads every workspace's sources", () => {
    expect(files.length).toBeGreaterThan(200);
  });

  it("has none at run time, in any package or service", () => {
    expect(cycles(files)).toEqual([]);
  });

  it("finds one when there is one (the check itself)", () => {
    const dir = path.join(ROOT, "test", "structure", "cycle-fixture");
    expect(cycles(sourceFiles(dir)).map((c) => c.map((f) => path.basename(f)))).toEqual([["a.ts", "b.ts", "a.ts"]]);
  });
});
