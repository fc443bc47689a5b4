// The dev stack (`npm start`) and the process launcher the integration tests and the benchmark share.
export * from "./processes";
export * from "./embedded-postgres";
