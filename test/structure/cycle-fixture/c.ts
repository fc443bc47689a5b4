// Fixture for import-cycles.test.ts: a type-only import back to b, which must not count.
import type { b } from "./b";
export type Unused = typeof b;
