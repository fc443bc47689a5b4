/** Channel on which replicas tell each other that a key changed or was destroyed. */
export const KEY_EVENTS_CHANNEL = "kms_key_events";
