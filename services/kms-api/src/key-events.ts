// Listens for changes other replicas make (Postgres LISTEN/NOTIFY on commit). Today kms-api reads key
// metadata from Postgres on every request, so changes are seen at once; the listener makes this
// replica's worker drop cached handles of destroyed keys. A metadata cache would be invalidated here.
import { KEY_EVENTS_CHANNEL } from "@kms/db";
import type { Sql } from "@kms/db";
import type { Services } from "./context";
import { describeError } from "./log";

export async function listenForKeyEvents(sql: Sql, s: Services): Promise<() => Promise<void>> {
  const { unlisten } = await sql.listen(KEY_EVENTS_CHANNEL, (payload) => {
    const [kind, , versions] = payload.split(":");
    if (kind === "destroyed" && versions) {
      s.worker.forgetKeys({ keyVersionIds: versions.split(",") }).catch((err: unknown) => {
        s.log.warn("could not tell the worker to forget destroyed key versions", describeError(err));
      });
    }
  });
  return unlisten;
}
