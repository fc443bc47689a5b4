// Versioned schema migrations, in order. Never edit a migration that has shipped: add a new one.
// Enum columns hold the proto enum numbers (stable by the API contract).
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "keys, versions, audit",
    sql: `
      CREATE TABLE keys (
        key_id                          uuid PRIMARY KEY,
        description                     text NOT NULL DEFAULT '',
        key_spec                        smallint NOT NULL,
        key_usage                       smallint NOT NULL,
        protection_level                smallint NOT NULL,
        origin                          smallint NOT NULL,
        key_state                       smallint NOT NULL,
        creation_time                   timestamptz NOT NULL,
        creator                         text NOT NULL,
        primary_key_version_id          uuid,
        automatic_rotation              boolean NOT NULL DEFAULT false,
        rotation_interval_seconds       integer,
        next_rotation_time              timestamptz,
        last_rotation_time              timestamptz,
        delete_time                     timestamptz,
        deletion_protection             boolean NOT NULL DEFAULT false,
        deletion_protection_description text NOT NULL DEFAULT '',
        material_expire_time            timestamptz
      );
      CREATE INDEX keys_listing ON keys (creation_time, key_id);

      -- Key material is stored only wrapped under the HSM-resident root key.
      CREATE TABLE key_versions (
        key_version_id   uuid PRIMARY KEY,
        key_id           uuid NOT NULL REFERENCES keys (key_id),
        creation_time    timestamptz NOT NULL,
        wrapped_material bytea NOT NULL,
        root_key_id      text NOT NULL
      );
      CREATE INDEX key_versions_by_key ON key_versions (key_id, creation_time, key_version_id);

      CREATE TABLE key_tags (
        key_id    uuid NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE,
        tag_key   text NOT NULL,
        tag_value text NOT NULL,
        PRIMARY KEY (key_id, tag_key)
      );

      -- One row per request, whatever its outcome. Never plaintext, data keys or key material.
      -- A SHA-256 hash chain (see @kms/audit-chain): sequence numbers have no gaps, each row's hash
      -- covers its content and prev_hash. audit_head records the last row, so a cut tail shows too.
      CREATE TABLE audit_events (
        sequence           bigint PRIMARY KEY,
        time               timestamptz NOT NULL,
        request_id         text NOT NULL,
        principal          text NOT NULL,
        operation          text NOT NULL,
        key_id             text NOT NULL DEFAULT '',
        key_version_id     text NOT NULL DEFAULT '',
        result_code        text NOT NULL,
        error_code         text NOT NULL DEFAULT '',
        encryption_context jsonb NOT NULL DEFAULT '{}',
        prev_hash          bytea NOT NULL,
        hash               bytea NOT NULL
      );
      CREATE INDEX audit_events_by_key ON audit_events (key_id, sequence);
      CREATE INDEX audit_events_by_principal ON audit_events (principal, sequence);
      CREATE INDEX audit_events_by_time ON audit_events (time);

      CREATE TABLE audit_head (
        id       integer PRIMARY KEY CHECK (id = 1),
        sequence bigint NOT NULL,
        hash     bytea NOT NULL
      );

      -- Secrets the replicas share (e.g. the page-token MAC key).
      CREATE TABLE service_secrets (
        name  text PRIMARY KEY,
        value bytea NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: "lifecycle: aliases, tombstones, usage counters",
    sql: `
      ALTER TABLE keys ADD COLUMN deletion_requested_by text NOT NULL DEFAULT '';
      CREATE INDEX keys_rotation_due ON keys (next_rotation_time) WHERE automatic_rotation;
      CREATE INDEX keys_deletion_due ON keys (delete_time) WHERE delete_time IS NOT NULL;

      -- Encryptions done under each version, added in batches (never one write per request).
      ALTER TABLE key_versions ADD COLUMN encryptions bigint NOT NULL DEFAULT 0;

      CREATE TABLE aliases (
        alias_name    text PRIMARY KEY,
        key_id        uuid NOT NULL REFERENCES keys (key_id),
        creation_time timestamptz NOT NULL,
        update_time   timestamptz NOT NULL
      );
      CREATE INDEX aliases_by_key ON aliases (key_id, alias_name);

      -- What stays of a destroyed key: who and when, for the audit trail. No material.
      CREATE TABLE key_tombstones (
        key_id                uuid PRIMARY KEY,
        creation_time         timestamptz NOT NULL,
        creator               text NOT NULL,
        deletion_requested_by text NOT NULL,
        destroy_time          timestamptz NOT NULL,
        key_version_ids       uuid[] NOT NULL
      );
      CREATE INDEX key_tombstones_versions ON key_tombstones USING gin (key_version_ids);
    `,
  },
  {
    version: 3,
    name: "public keys of asymmetric key versions",
    sql: `
      -- SubjectPublicKeyInfo (DER) of RSA, EC and Ed25519 versions, so GetPublicKey, AsymmetricVerify and
      -- AsymmetricEncrypt need no unwrap. NULL for AES and HMAC versions.
      ALTER TABLE key_versions ADD COLUMN public_key bytea;
    `,
  },
  {
    version: 4,
    name: "key policies",
    sql: `
      -- The key's policy document (JSON). NULL: the default policy (creator and KMS_ADMINS).
      ALTER TABLE keys ADD COLUMN policy text;
    `,
  },
  {
    version: 5,
    name: "key import: import tokens, imported material",
    sql: `
      -- One row per GetParametersForImport. The caller holds the token; only its SHA-256 is here. The RSA
      -- wrapping key's private half is stored only wrapped under the root key (like a key version), so any
      -- replica's worker can use it, after restarts too; it is cleared once the token is used.
      CREATE TABLE import_tokens (
        token_id            uuid PRIMARY KEY,
        token_hash          bytea NOT NULL UNIQUE,
        key_id              uuid NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE,
        wrapping_algorithm  smallint NOT NULL,
        wrapping_key_spec   smallint NOT NULL,
        protection_level    smallint NOT NULL,
        wrapped_private_key bytea,
        root_key_id         text NOT NULL,
        creation_time       timestamptz NOT NULL,
        expire_time         timestamptz NOT NULL,
        used_at             timestamptz
      );
      CREATE INDEX import_tokens_by_key ON import_tokens (key_id);
      CREATE INDEX import_tokens_expired ON import_tokens (expire_time);

      -- What stays of an imported key's material when it is deleted or expires: the version id (so old
      -- ciphertexts decrypt again after re-import) and a fingerprint (so only the same material is accepted).
      -- Never the material.
      CREATE TABLE imported_material (
        key_id                uuid PRIMARY KEY REFERENCES keys (key_id) ON DELETE CASCADE,
        key_version_id        uuid NOT NULL,
        version_creation_time timestamptz NOT NULL,
        fingerprint           bytea NOT NULL
      );
      CREATE INDEX keys_material_expiry ON keys (material_expire_time) WHERE material_expire_time IS NOT NULL;
    `,
  },
  {
    version: 7,
    name: "signed audit checkpoints",
    sql: `
      -- Where the audit chain stood, signed by the hsm-worker's checkpoint key (see @kms/audit-chain
      -- checkpoint.ts). A copy for ListAuditCheckpoints: the copies that count are the ones kept outside
      -- this database (the "audit chain head" log lines), since its administrators can delete these too.
      CREATE TABLE audit_checkpoints (
        id        bigserial PRIMARY KEY,
        sequence  bigint NOT NULL,
        head_hash bytea NOT NULL,
        time      timestamptz NOT NULL,
        key_id    text NOT NULL,
        signature bytea NOT NULL
      );
      CREATE INDEX audit_checkpoints_by_sequence ON audit_checkpoints (sequence);
    `,
  },
  {
    version: 8,
    name: "root key rotations",
    sql: `
      -- kms admin rotate-root (kms-api's root-rotation.ts): one row per rotation, its state and progress,
      -- so that a run stopped anywhere resumes where it was. At most one is unfinished at a time.
      CREATE TABLE root_rotations (
        rotation_id         uuid PRIMARY KEY,
        state               smallint NOT NULL,
        started_by          text NOT NULL,
        start_time          timestamptz NOT NULL,
        old_root_key_id     text NOT NULL,
        legacy_root_key_id  text NOT NULL DEFAULT '',
        new_root_key_id     text NOT NULL DEFAULT '',
        -- The re-wrap pass: versions are taken in id order after this one (NULL: from the start).
        cursor_version_id   uuid,
        rewrapped_versions  bigint NOT NULL DEFAULT 0,
        retained_versions   bigint NOT NULL DEFAULT 0,
        retained_reason     text NOT NULL DEFAULT '',
        -- Old roots are destroyed no earlier than this (replicas' caches and in-flight calls drain).
        retire_time         timestamptz,
        -- Comma-separated.
        destroyed_root_key_ids text NOT NULL DEFAULT '',
        end_time            timestamptz
      );
      -- RootRotationState (kms.v1): 1 REWRAPPING and 2 RETIRING are unfinished.
      CREATE UNIQUE INDEX root_rotations_one_unfinished ON root_rotations ((true)) WHERE state IN (1, 2);
      CREATE INDEX key_versions_by_root ON key_versions (root_key_id, key_version_id);
    `,
  },
  {
    version: 9,
    name: "grants; audit rows name the grant and mark dry runs",
    sql: `
      -- A grant lets grantee use key_id for operations (docs/grants.md). Retired and revoked grants are
      -- deleted; a destroyed key's grants go with its row (ON DELETE CASCADE). Grant tokens are not stored:
      -- a token is the grant id with a MAC (kms-api grant-tokens.ts). At most one constraint map is non-empty.
      CREATE TABLE grants (
        grant_id                  uuid PRIMARY KEY,
        key_id                    uuid NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE,
        name                      text NOT NULL DEFAULT '',
        grantee_principal         text NOT NULL,
        retiring_principal        text NOT NULL DEFAULT '',
        operations                text[] NOT NULL,
        context_equals            jsonb NOT NULL DEFAULT '{}',
        context_subset            jsonb NOT NULL DEFAULT '{}',
        issuing_principal         text NOT NULL,
        creation_time             timestamptz NOT NULL
      );
      CREATE INDEX grants_by_key ON grants (key_id, creation_time, grant_id);
      CREATE INDEX grants_by_grantee ON grants (key_id, grantee_principal);
      CREATE INDEX grants_by_retiring_principal ON grants (retiring_principal, creation_time, grant_id) WHERE retiring_principal <> '';
      CREATE UNIQUE INDEX grants_by_name ON grants (key_id, name) WHERE name <> '';

      -- Covered by the row hash only when set (@kms/audit-chain), so earlier rows keep their hashes.
      ALTER TABLE audit_events ADD COLUMN grant_id text NOT NULL DEFAULT '';
      ALTER TABLE audit_events ADD COLUMN dry_run boolean NOT NULL DEFAULT false;
    `,
  },
];
