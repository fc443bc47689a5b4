// The principal namespaces the service gives out itself, which no token may claim.
/** Prefix of principals taken from a certificate's subject CN (URI SANs with this scheme are refused). */
export const CN_PREFIX = "cn:";
/** Prefix of the service's own principal (kms:system, in the audit rows of background jobs). */
export const SERVICE_PREFIX = "kms:";

/** A name no caller may present as itself: the cn: and kms: namespaces are the service's to give. */
export function isReservedPrincipal(name: string): boolean {
  const lower = name.toLowerCase();
  return lower.startsWith(CN_PREFIX) || lower.startsWith(SERVICE_PREFIX);
}
