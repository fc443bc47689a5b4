// The AWS SDK for JavaScript v3 (@aws-sdk/client-kms) pointed at a stack's AWS-compatible listener.
import { KMSClient } from "@aws-sdk/client-kms";
import type { KMSClientConfig } from "@aws-sdk/client-kms";
import type { AwsAccess } from "./harness";

export function kmsClient(access: AwsAccess, config: Partial<KMSClientConfig> = {}): KMSClient {
  return new KMSClient({
    endpoint: access.endpoint,
    region: access.region,
    credentials: { accessKeyId: access.accessKeyId, secretAccessKey: access.secretAccessKey },
    ...config,
  });
}

/** The AWS exception a call failed with: its name and HTTP status (fails the test if the call succeeded). */
export async function awsError(promise: Promise<unknown>): Promise<{ name: string; status: number | undefined; message: string }> {
  try {
    await promise;
  } catch (err) {
    const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
    if (typeof e.name === "string" && e.$metadata !== undefined) return { name: e.name, status: e.$metadata.httpStatusCode, message: e.message ?? "" };
    throw err;
  }
  throw new Error("expected the call to fail");
}
