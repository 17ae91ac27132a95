/**
 * The raw pipelines' storage: a fresh database opened exactly as
 * `startControlPlane` opens the server's (same migrations, durability, group
 * committer and read-only connection) with the tracing store on it, the
 * collector's default limits.
 */
import { join } from "node:path";
import { defaultCollectorLimits } from "../../../server/core/tracing/model.js";
import { closeDatabase, openDatabase, openReader, type Durability } from "../../../server/store/database.js";
import { GroupCommitter } from "../../../server/store/group-commit.js";
import { migrations } from "../../../server/store/migrations.js";
import { TracingStore } from "../../../server/store/tracing-store.js";

/** A tracing store on a new database in `dir`, and how to close it (flush, checkpoint, close). */
export function openPipelineStore(dir: string, durability: Durability): { readonly store: TracingStore; close(): void } {
  const db = openDatabase({ path: join(dir, "pipeline.db"), durability, migrations });
  const reader = openReader(db);
  const committer = new GroupCommitter(db);
  const store = new TracingStore(db, committer, { limits: defaultCollectorLimits(), reader });
  return {
    store,
    close: () => {
      committer.close();
      reader?.close();
      closeDatabase(db);
    },
  };
}
