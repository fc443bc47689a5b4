// The rows of keys and key_versions as the code sees them (key-store.ts reads and writes them).
export interface KeyRecord {
  keyId: string;
  /** Who scheduled deletion (kept in the tombstone). */
  deletionRequestedBy?: string;
  /** The key policy document (JSON); null means the default policy. */
  policy: string | null;
  description: string;
  keySpec: number;
  keyUsage: number;
  protectionLevel: number;
  origin: number;
  keyState: number;
  creationTime: Date;
  creator: string;
  primaryKeyVersionId: string | null;
  automaticRotation: boolean;
  rotationIntervalSeconds: number | null;
  nextRotationTime: Date | null;
  lastRotationTime: Date | null;
  deleteTime: Date | null;
  deletionProtection: boolean;
  deletionProtectionDescription: string;
  materialExpireTime: Date | null;
  tags: Record<string, string>;
}

export interface KeyVersionRecord {
  keyVersionId: string;
  keyId: string;
  creationTime: Date;
  wrappedMaterial: Buffer;
  rootKeyId: string;
  /** SubjectPublicKeyInfo (DER) of RSA, EC and Ed25519 versions; null for AES and HMAC. */
  publicKey?: Buffer | null;
}

/** What stays of a destroyed key. */
export interface KeyTombstone {
  keyId: string;
  creationTime: Date;
  creator: string;
  deletionRequestedBy: string;
  destroyTime: Date;
  keyVersionIds: string[];
}

/** Columns a lifecycle change may set. */
export type KeyPatch = Partial<
  Pick<
    KeyRecord,
    | "description"
    | "keyState"
    | "primaryKeyVersionId"
    | "automaticRotation"
    | "rotationIntervalSeconds"
    | "nextRotationTime"
    | "lastRotationTime"
    | "deleteTime"
    | "deletionProtection"
    | "deletionProtectionDescription"
    | "materialExpireTime"
    | "deletionRequestedBy"
    | "policy"
  >
>;


export type NewKey = Omit<KeyRecord, "lastRotationTime" | "deleteTime" | "materialExpireTime" | "deletionProtectionDescription" | "deletionProtection">;
