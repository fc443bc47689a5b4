// Unit tests sit beside the code (src/**/*.test.ts) and import workspaces from source; integration
// tests (test/integration) start the built services as real processes against Postgres and SoftHSM2.
// @noble/post-quantum (and the @noble versions it brings) ship ES modules only, which jest on Node 20
// cannot require: they are compiled to CommonJS like our own sources. Nothing else in node_modules is.
const ESM_ONLY = "/node_modules/@noble/post-quantum/";
const transform = {
  "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.test.json" }],
  [`${ESM_ONLY}.+\\.js$`]: ["ts-jest", { tsconfig: { allowJs: true, module: "commonjs", target: "es2022", isolatedModules: true }, diagnostics: false }],
};
const transformIgnorePatterns = [`^(?!.*${ESM_ONLY}).*/node_modules/`];
const moduleNameMapper = {
  "^@kms/proto/internal$": "<rootDir>/packages/proto/src/internal",
  "^@kms/(proto|errors|config|ciphertext|key-rules|integrity|db|softhsm|dev-stack|audit-chain|key-policy|client|cli|telemetry)$": "<rootDir>/packages/$1/src",
  "^@kms/(kms-api|hsm-worker|kube-kms-plugin)$": "<rootDir>/services/$1/src",
};

/** @type {import('jest').Config} */
module.exports = {
  projects: [
    {
      displayName: "unit",
      testEnvironment: "node",
      transform,
      transformIgnorePatterns,
      moduleNameMapper,
      testMatch: ["<rootDir>/packages/*/src/**/*.test.ts", "<rootDir>/services/*/src/**/*.test.ts", "<rootDir>/test/structure/**/*.test.ts"],
    },
    {
      displayName: "integration",
      testEnvironment: "node",
      transform,
      transformIgnorePatterns,
      moduleNameMapper,
      testMatch: ["<rootDir>/test/integration/**/*.test.ts"],
      setupFilesAfterEnv: ["<rootDir>/test/integration-timeout.ts"],
    },
  ],
};
