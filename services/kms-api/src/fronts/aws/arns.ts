// Key ids as AWS clients send them (key id, key ARN, alias name, alias ARN) and the ARNs responses carry.
// The region and account are this service's (KMS_AWS_REGION, KMS_AWS_ACCOUNT_ID).
import { invalidArgument, keyNotFound } from "@kms/errors";

const ARN = /^arn:aws:kms:([^:]*):([^:]*):(key|alias)\/(.+)$/;

export class Arns {
  constructor(
    readonly region: string,
    readonly accountId: string,
  ) {}

  keyArn(keyId: string): string {
    return `arn:aws:kms:${this.region}:${this.accountId}:key/${keyId}`;
  }

  aliasArn(aliasName: string): string {
    return `arn:aws:kms:${this.region}:${this.accountId}:${aliasName}`;
  }

  /**
   * A KeyId member as the kms.v1 key_id (a key id or "alias/<name>"). An ARN of another region or account
   * names no key here: NotFoundException, as AWS answers for a key it does not have.
   */
  keyReference(value: string, field = "KeyId"): string {
    if (!value.startsWith("arn:")) return value;
    const m = ARN.exec(value);
    if (!m) throw invalidArgument(`${field}: ARN`, `${JSON.stringify(value)} is not a KMS key or alias ARN`);
    const [, region, account, kind, rest] = m as unknown as [string, string, string, string, string];
    if (region !== this.region || account !== this.accountId) throw keyNotFound(value);
    return kind === "key" ? rest : `alias/${rest}`;
  }
}
