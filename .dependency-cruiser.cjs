// dependency-cruiser's rules for this repository (`npm run lint:deps`; test/structure/import-cycles.test.ts
// runs it in `npm test`). Type-only imports count: tsPreCompilationDeps sees them before tsc erases them.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    { name: "no-circular", comment: "a module may not import itself back, by value or by type", severity: "error", from: {}, to: { circular: true } },
    {
      name: "sdk-uses-public-api-only",
      comment: "the SDK and the CLI speak kms.v1 only: the worker protocol and the plugin contract are the services' (@kms/proto/internal)",
      severity: "error",
      from: { path: "^packages/(client|cli)/" },
      to: { path: "^packages/proto/src/(internal|gen/kms/hsm|gen/k8s)" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    // Generated code, build output, and the fixture that proves the check finds a cycle.
    exclude: { path: "(^|/)(dist|gen|node_modules|cycle-fixture)/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.deps.json" },
  },
};
