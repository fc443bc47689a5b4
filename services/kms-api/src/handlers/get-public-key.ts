import { createPublicKey } from "node:crypto";
import { checkUsable } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import { publicKeyOf, selectVersion } from "../key-versions";

import type { Handler } from "../pipeline/operation";

/** PEM SubjectPublicKeyInfo from the stored DER: no worker call. */
export const getPublicKey: Handler<typeof kms.GetPublicKeyRequestSchema, typeof kms.GetPublicKeyResponseSchema> = async (req, ctx, s) => {
  const key = await s.lookup.find(ctx, req.keyId);
  checkUsable(key, "GetPublicKey");
  const version = await selectVersion(s, ctx, key, req.keyVersionId);
  const der = publicKeyOf(version);
  const publicKey = createPublicKey({ key: der, format: "der", type: "spki" }).export({ type: "spki", format: "pem" });
  return { publicKey: publicKey.toString(), keyId: key.keyId, keyVersionId: version.keyVersionId };
};
