// Background jobs change keys too (rotation, destruction, expiry of imported material, rotation by
// use): each change commits with its own audit row, as an RPC's does (audited-change.ts), so that the
// chain records every change to a key and a change whose row cannot be written does not happen.
// The operation names are not RPC names and the principal is not one a caller can authenticate as
// (no certificate, token or dev mode yields it), so these rows cannot be mistaken for a caller's.
import { randomUUID } from "node:crypto";
import type { UnitOfWork } from "@kms/db";
import type { Services } from "../context";

export const SYSTEM_PRINCIPAL = "kms:system";

export type JobOperation = "AutomaticRotation" | "RotationByUse" | "KeyDestruction" | "ImportedMaterialExpiry";

/** The job's audit row, written last in the change's unit of work. */
export async function auditJobChange(s: Services, work: UnitOfWork, operation: JobOperation, keyId: string, keyVersionId = ""): Promise<void> {
  await work.appendAudit({
    time: s.clock(),
    requestId: randomUUID(),
    principal: SYSTEM_PRINCIPAL,
    operation,
    keyId,
    keyVersionId,
    encryptionContext: {},
    resultCode: "OK",
    errorCode: "",
  });
}
