// Fixture for import-cycles.test.ts.
import { a } from "./a";
import type { Unused } from "./c";
export const b = () => a;
export type { Unused };
