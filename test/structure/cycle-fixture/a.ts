// Fixture for import-cycles.test.ts: a imports b by value, b imports a back.
import { b } from "./b";
export const a = () => b;
