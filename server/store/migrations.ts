import type { Migration } from "./database.js";
import { mirrorSchema, mirrorSharedPayloadsSchema } from "./mirror-store.js";
import { registryHealthSchema, registrySchema } from "./registry-store.js";
import { anomalyLogSchema, tracingSchema } from "./tracing-store.js";

/**
 * The project's schema history, applied in order and recorded in
 * `PRAGMA user_version`. Append new versions; never edit one that has
 * landed, since databases in the field already ran it.
 */
export const migrations: readonly Migration[] = [
  {
    version: 1,
    description: "registry instances and the topology revision log",
    up: (db) => db.exec(registrySchema),
  },
  {
    version: 2,
    description: "trace collector spans and per-trace rows",
    up: (db) => db.exec(tracingSchema),
  },
  {
    version: 3,
    description: "trace anomaly revision log",
    up: (db) => db.exec(anomalyLogSchema),
  },
  {
    version: 4,
    description: "mirrors, their durable buffers and the mirror-config revision log",
    up: (db) => db.exec(mirrorSchema),
  },
  {
    version: 5,
    description: "registry health scores, degraded flags and warm-ups",
    up: (db) => db.exec(registryHealthSchema),
  },
  {
    version: 6,
    description: "mirror buffers share one stored payload per capture",
    up: (db) => db.exec(mirrorSharedPayloadsSchema),
  },
];
