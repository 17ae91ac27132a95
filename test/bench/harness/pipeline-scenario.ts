import type { Durability } from "../../../server/store/database.js";

/** Where a {@link PipelineScenario} keeps its state. */
export interface PipelineContext {
  /** An empty temp directory of this measurement (removed afterwards). */
  readonly dir: string;
  /** Durability of any database the pipeline opens. */
  readonly durability: Durability;
}

/** An opened pipeline: one operation per call of {@link run}. */
export interface PipelineRun {
  /** Runs operation `sequence` (0, 1, …) to its end, e.g. decodes a batch and commits it. */
  run(sequence: number): Promise<void>;
  /** Releases what {@link PipelineScenario.open} took (closes the database). */
  close(): void;
}

/**
 * A raw pipeline: what a server does for a call, run in a process of its own
 * with no RPC around it, as the ceiling of a target that does the same work
 * behind an RPC (e.g. decode a batch of spans, validate and store it). Like a
 * `LoadScenario` it lives in its own module whose default export it is, so
 * that the pipeline process can load it by URL.
 *
 * @example
 * const pipeline: PipelineScenario = {
 *   open: ({ dir, durability }) => {
 *     const store = openStore(join(dir, "pipeline.db"), durability);
 *     return { run: (sequence) => store.write(batch(sequence)), close: () => store.close() };
 *   },
 * };
 * export default pipeline;
 */
export interface PipelineScenario {
  open(context: PipelineContext): PipelineRun | Promise<PipelineRun>;
}

/** Loads the pipeline exported as default by the compiled module at `url`. */
export async function loadPipelineScenario(url: string): Promise<PipelineScenario> {
  const module = (await import(url)) as { default?: Partial<PipelineScenario> };
  const scenario = module.default;
  if (typeof scenario?.open !== "function") throw new Error(`${url} has no default export shaped as a PipelineScenario`);
  return scenario as PipelineScenario;
}
