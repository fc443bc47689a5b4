// CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant (docs/grants.md). Principals are
// this service's principal strings (an AWS client sends them where AWS takes an ARN). AWS's grant
// operations map onto kms.v1's: Encrypt and Decrypt cover the RSA forms too, Sign and Verify are
// AsymmetricSign and AsymmetricVerify; CreateGrant is not grantable here.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { invalidArgument } from "@kms/errors";
import { kms } from "@kms/proto";
import type { Arns } from "./arns";
import { unsupported } from "./errors";
import { compact, epochSeconds } from "./json";
import type { Members } from "./json";
import { awsOperation, empty, keyIdRequest } from "./operation";
import type { AwsEntry } from "./operation";

const m = kms.KeyManagementService.method;

const FROM_AWS: Record<string, string[]> = {
  Encrypt: ["Encrypt", "AsymmetricEncrypt"],
  Decrypt: ["Decrypt", "AsymmetricDecrypt"],
  Sign: ["AsymmetricSign"],
  Verify: ["AsymmetricVerify"],
  ...Object.fromEntries(
    ["GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo", "GetPublicKey", "RetireGrant", "DescribeKey",
      "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "VerifyMac", "DeriveSharedSecret"].map((op) => [op, [op]]),
  ),
};
const TO_AWS: Record<string, string> = { AsymmetricEncrypt: "Encrypt", AsymmetricDecrypt: "Decrypt", AsymmetricSign: "Sign", AsymmetricVerify: "Verify" };

/** A constrained grant gets only the symmetric forms: RSA encryption takes no encryption context. */
function operationsFromAws(members: Members, constrained: boolean): string[] {
  const ops = members.strings("Operations");
  return [...new Set(ops.flatMap((op) => {
    const mapped = FROM_AWS[op];
    if (mapped) return constrained ? mapped.slice(0, 1) : mapped;
    if (op === "CreateGrant") throw unsupported(`the grant operation ${op}`);
    throw invalidArgument("Operations", `${JSON.stringify(op.slice(0, 64))} is not a grant operation`);
  }))];
}

function toAwsGrant(g: kms.Grant, arns: Arns) {
  const constraints = g.constraints;
  const equals = constraints?.encryptionContextEquals ?? {};
  const subset = constraints?.encryptionContextSubset ?? {};
  return compact({
    KeyId: arns.keyArn(g.keyId),
    GrantId: g.grantId,
    Name: g.name || undefined,
    CreationDate: g.creationTime ? epochSeconds(timestampDate(g.creationTime)) : undefined,
    GranteePrincipal: g.granteePrincipal,
    RetiringPrincipal: g.retiringPrincipal || undefined,
    IssuingAccount: arns.accountId,
    Operations: [...new Set(g.operations.map((op) => TO_AWS[op] ?? op))],
    Constraints:
      Object.keys(equals).length > 0 ? { EncryptionContextEquals: equals } : Object.keys(subset).length > 0 ? { EncryptionContextSubset: subset } : undefined,
  });
}

const grantPage = (r: { grants: kms.Grant[]; nextPageToken: string }, arns: Arns) =>
  compact({ Grants: r.grants.map((g) => toAwsGrant(g, arns)), NextMarker: r.nextPageToken === "" ? undefined : r.nextPageToken, Truncated: r.nextPageToken !== "" });

const page = (members: Members) => ({ pageSize: members.integer("Limit", 1, 1000) ?? 0, pageToken: members.string("Marker") ?? "" });

export const GRANT_OPERATIONS: Record<string, AwsEntry> = {
  CreateGrant: awsOperation(m.createGrant, {
    decode: ({ members, arns }) => {
      const constraints = members.object("Constraints");
      const equals = constraints?.stringMap("EncryptionContextEquals") ?? {};
      const subset = constraints?.stringMap("EncryptionContextSubset") ?? {};
      const constrained = Object.keys(equals).length + Object.keys(subset).length > 0;
      return {
        ...keyIdRequest({ members, arns }),
        granteePrincipal: members.requiredString("GranteePrincipal"),
        retiringPrincipal: members.string("RetiringPrincipal") ?? "",
        operations: operationsFromAws(members, constrained),
        name: members.string("Name") ?? "",
        constraints: { encryptionContextEquals: equals, encryptionContextSubset: subset },
      };
    },
    encode: (r) => ({ GrantToken: r.grantToken, GrantId: r.grantId }),
  }),
  ListGrants: awsOperation(m.listGrants, {
    decode: ({ members, arns }) => ({
      ...keyIdRequest({ members, arns }),
      ...page(members),
      grantId: members.string("GrantId") ?? "",
      granteePrincipal: members.string("GranteePrincipal") ?? "",
    }),
    encode: (r, { arns }) => grantPage(r, arns),
  }),
  ListRetirableGrants: awsOperation(m.listRetirableGrants, {
    decode: ({ members }) => ({ retiringPrincipal: members.requiredString("RetiringPrincipal"), ...page(members) }),
    encode: (r, { arns }) => grantPage(r, arns),
  }),
  RetireGrant: awsOperation(m.retireGrant, {
    decode: ({ members, arns }) => {
      const keyId = members.string("KeyId");
      return { grantToken: members.string("GrantToken") ?? "", keyId: keyId === undefined ? "" : arns.keyReference(keyId), grantId: members.string("GrantId") ?? "" };
    },
    encode: empty,
  }),
  RevokeGrant: awsOperation(m.revokeGrant, {
    decode: ({ members, arns }) => ({ ...keyIdRequest({ members, arns }), grantId: members.requiredString("GrantId") }),
    encode: empty,
  }),
};
