import type { Durability } from "../../../server/store/database.js";
import type { LoadClientResult, MeasureMessage, StartedMessage, StopMessage } from "./load-protocol.js";

/**
 * What a pipeline process is told to do, as JSON in its first argument. The
 * messages are the load client's: `started` once running, `measure` and
 * `stop` from the parent, then a {@link PipelineResult}.
 */
export interface PipelineJob {
  /** URL of the compiled pipeline module (see `PipelineScenario`). */
  readonly scenario: string;
  /** Operations in flight (closed loop). */
  readonly concurrency: number;
  /** An empty temp directory the parent owns. */
  readonly dir: string;
  readonly durability: Durability;
}

/**
 * Pipeline → parent: what the measured window saw, as a load client reports
 * it (`cpuMicros` being the whole pipeline's CPU time), plus the process's GC
 * pauses in the window and its RSS at the end.
 */
export interface PipelineResult extends LoadClientResult {
  /** GC pause time in the window, in milliseconds. */
  readonly gcMs: number;
  readonly rssBytes: number;
}

/** Every message between the parent and a pipeline process. */
export type PipelineMessage = MeasureMessage | StopMessage | StartedMessage | PipelineResult;
