// Fixture for import-cycles.test.ts: a type-only import back to b, which counts too (a type cycle still
// ties the two modules' designs together).
import type { b } from "./b";
export type Unused = typeof b;
