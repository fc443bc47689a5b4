// Changes other replicas commit arrive here (Postgres LISTEN/NOTIFY, delivered on commit):
//   changed:<key id>                    drop the key from this replica's metadata cache
//   alias:<alias name>                  drop the alias
//   destroyed:<key id>:<version ids>    drop the key, and tell this replica's worker to forget the versions
//   rewrapped:<key id>:<version id>     root rotation re-wrapped the version: drop its cached row (the old
//                                       blob names a root that will be destroyed)
//   roots:<root key id>                 a root rotation switched or retired root sets on the shared token:
//                                       have this replica's worker read them again (GetStatus does)
// postgres.js re-listens after a lost connection; notifications may have been missed meanwhile, so the
// whole cache is dropped then (the cache's 1 s TTL bounds staleness even before that).
import { KEY_EVENTS_CHANNEL } from "@kms/db";
import type { Sql } from "@kms/db";
import type { Services } from "./context";
import { describeError } from "@kms/telemetry";

export function applyKeyEvent(s: Services, payload: string): void {
  const colon = payload.indexOf(":");
  const kind = payload.slice(0, colon);
  const rest = payload.slice(colon + 1);
  if (kind === "changed") s.keys.invalidateKey(rest);
  if (kind === "alias") s.keys.invalidateAlias(rest);
  if (kind === "rewrapped") {
    const [keyId = "", versionId = ""] = rest.split(":");
    s.keys.invalidateKey(keyId);
    s.keys.invalidateVersion(versionId);
  }
  if (kind === "roots") {
    s.worker.refreshStatus().catch((err: unknown) => {
      s.log.warn("could not have the worker read the root sets again", describeError(err));
    });
  }
  if (kind === "destroyed") {
    const [keyId = "", versions = ""] = rest.split(":");
    s.keys.invalidateKey(keyId);
    if (versions) {
      s.worker.forgetKeys({ keyVersionIds: versions.split(",") }).catch((err: unknown) => {
        s.log.warn("could not tell the worker to forget destroyed key versions", describeError(err));
      });
    }
  }
}

export async function listenForKeyEvents(sql: Sql, s: Services): Promise<() => Promise<void>> {
  let connected = false;
  const { unlisten } = await sql.listen(
    KEY_EVENTS_CHANNEL,
    (payload) => applyKeyEvent(s, payload),
    () => {
      if (connected) s.keys.clear(); // a reconnect: events may have been missed
      connected = true;
    },
  );
  return unlisten;
}
