/**
 * The lifecycle rules of mirror configs: adding (unique id, at most
 * `maxMirrors`), enabling and disabling, and looking one up. The store
 * applies them inside its write transaction against what it holds.
 */
import { AlreadyExistsError, LimitExceededError, NotFoundError } from "../errors.js";
import type { MirrorConfig, MirrorLimits } from "./model.js";

/** What {@link checkAddMirror} reads of the configured mirrors. */
export interface MirrorLookup {
  has(mirrorId: string): boolean;
  readonly size: number;
}

/**
 * Checks that a mirror may be added. A duplicate id is reported before the
 * limit, so re-adding an existing mirror at capacity says "already exists".
 *
 * @throws AlreadyExistsError when a mirror with the id exists
 * @throws LimitExceededError when `maxMirrors` mirrors exist
 */
export function checkAddMirror(existing: MirrorLookup, mirrorId: string, limits: MirrorLimits): void {
  if (existing.has(mirrorId)) throw new AlreadyExistsError(`mirror ${JSON.stringify(mirrorId)} already exists`);
  if (existing.size >= limits.maxMirrors) {
    throw new LimitExceededError(
      `at most ${limits.maxMirrors} mirrors may be configured, ${existing.size} are: remove one first`,
    );
  }
}

/**
 * `config` enabled or disabled. Returns `config` itself when it already is,
 * so the store can tell a no-op (no write, no watch event) by identity.
 */
export function withEnabled(config: MirrorConfig, enabled: boolean): MirrorConfig {
  return config.enabled === enabled ? config : { ...config, enabled };
}

/**
 * The mirror a request names.
 *
 * @throws NotFoundError when there is none
 */
export function requireMirror(config: MirrorConfig | undefined, mirrorId: string): MirrorConfig {
  if (config === undefined) throw new NotFoundError(`mirror ${JSON.stringify(mirrorId)} not found`);
  return config;
}
