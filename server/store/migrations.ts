import type { Migration } from "./database.js";

/**
 * The schema history, applied by `openDatabase` in order. Each service
 * appends its tables here as the next version; a migration that has landed
 * is never edited or removed, because databases in the field already record
 * it in their `user_version`.
 */
export const migrations: readonly Migration[] = [];
