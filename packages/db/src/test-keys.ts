// For tests: a key row as the stores insert it, ENABLED AES-256 by "dev" unless `overrides` say otherwise.
import { randomUUID } from "node:crypto";
import type { NewKey } from "./key-store";

export function newKey(overrides: Partial<NewKey> = {}): NewKey {
  return {
    keyId: randomUUID(),
    description: "d",
    keySpec: 1,
    keyUsage: 1,
    protectionLevel: 2,
    origin: 1,
    keyState: 1,
    creationTime: new Date(),
    creator: "dev",
    primaryKeyVersionId: null,
    automaticRotation: false,
    rotationIntervalSeconds: null,
    nextRotationTime: null,
    tags: {},
    policy: null,
    ...overrides,
  };
}
