/** One target's figures from one measured window. */
export interface Measurement {
  readonly label: string;
  readonly opsPerSecond: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  /** Server process CPU time (user + system) in the window per completed call. */
  readonly cpuMicrosPerOp: number;
  /** Server process RSS at the end of the window. */
  readonly rssMiB: number;
  /**
   * Server GC pause time in the window per completed call. Shown because V8
   * can settle in a high-promotion state under this load (see `hostV8Flags`
   * in hosts.ts), which moves CPU/op by 10–20% independently of the code.
   */
  readonly gcMicrosPerOp: number;
}

/** One row of a bench's table: medians over the runs. */
export interface SummaryRow extends Measurement {
  /** Median over the runs of this run's ops/s ÷ the same run's ceiling ops/s. */
  readonly opsRatio: number;
  /** Median over the runs of this run's CPU/op ÷ the same run's ceiling CPU/op. */
  readonly cpuRatio: number;
}

/** A bench's pass mark: the server CPU per call of `target` at most `maxCpuRatio` × the ceiling's. */
export interface BenchGoal {
  readonly target: string;
  readonly maxCpuRatio: number;
}

/** Whether a {@link BenchGoal} was met. Printed, never asserted: this machine is too noisy for a gate. */
export interface Verdict extends BenchGoal {
  readonly cpuRatio: number;
  readonly pass: boolean;
}

/** A bench's result: the rows (ceiling first), the raw runs, and the verdict when it has a goal. */
export interface BenchSummary {
  readonly bench: string;
  readonly rows: readonly SummaryRow[];
  /** Every measurement, per run, in the order taken. */
  readonly runs: readonly (readonly Measurement[])[];
  readonly verdict?: Verdict;
}

/**
 * Reduces runs to one row per target. Each run holds the ceiling first, then
 * the targets, measured back to back; ratios are taken within a run (against
 * the ceiling measured next to it) before the median, so a machine that gets
 * slower between runs shifts both sides of a ratio alike.
 */
export function summarize(bench: string, runs: readonly (readonly Measurement[])[], goal: BenchGoal | undefined): BenchSummary {
  const first = runs[0];
  if (first === undefined) throw new Error("no runs to summarize");
  const rows = first.map((_, index): SummaryRow => {
    const of = (pick: (m: Measurement) => number): number => median(runs.map((run) => pick(at(run, index))));
    const ratio = (pick: (m: Measurement) => number): number => median(runs.map((run) => pick(at(run, index)) / pick(at(run, 0))));
    return {
      label: at(first, index).label,
      opsPerSecond: of((m) => m.opsPerSecond),
      p50Ms: of((m) => m.p50Ms),
      p90Ms: of((m) => m.p90Ms),
      p99Ms: of((m) => m.p99Ms),
      cpuMicrosPerOp: of((m) => m.cpuMicrosPerOp),
      rssMiB: of((m) => m.rssMiB),
      gcMicrosPerOp: of((m) => m.gcMicrosPerOp),
      opsRatio: ratio((m) => m.opsPerSecond),
      cpuRatio: ratio((m) => m.cpuMicrosPerOp),
    };
  });
  const judged = goal === undefined ? undefined : rows.find((row) => row.label === goal.target);
  if (goal !== undefined && judged === undefined) throw new Error(`goal names target "${goal.target}", which the bench does not measure`);
  return {
    bench,
    rows,
    runs,
    ...(goal !== undefined && judged !== undefined
      ? { verdict: { ...goal, cpuRatio: judged.cpuRatio, pass: judged.cpuRatio <= goal.maxCpuRatio } }
      : {}),
  };
}

const columns: readonly { readonly title: string; readonly cell: (row: SummaryRow) => string }[] = [
  { title: "target", cell: (row) => row.label },
  { title: "ops/s", cell: (row) => row.opsPerSecond.toFixed(0) },
  { title: "p50 ms", cell: (row) => row.p50Ms.toFixed(2) },
  { title: "p90 ms", cell: (row) => row.p90Ms.toFixed(2) },
  { title: "p99 ms", cell: (row) => row.p99Ms.toFixed(2) },
  { title: "CPU µs/op", cell: (row) => row.cpuMicrosPerOp.toFixed(1) },
  { title: "RSS MiB", cell: (row) => row.rssMiB.toFixed(0) },
  { title: "ops ÷ ceiling", cell: (row) => row.opsRatio.toFixed(2) },
  { title: "CPU/op ÷ ceiling", cell: (row) => row.cpuRatio.toFixed(2) },
  { title: "GC µs/op", cell: (row) => row.gcMicrosPerOp.toFixed(1) },
];

/** The table of a summary (medians of `runs` runs), followed by its verdict line when it has one. */
export function formatSummary(summary: BenchSummary): string {
  const cells = [columns.map((c) => c.title), ...summary.rows.map((row) => columns.map((c) => c.cell(row)))];
  const widths = columns.map((_, i) => Math.max(...cells.map((line) => (line[i] as string).length)));
  const lines = cells.map((line) => line.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number))).join("  "));
  lines.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  const out = [`${summary.bench}: median of ${summary.runs.length} runs`, ...lines];
  const verdict = summary.verdict;
  if (verdict !== undefined) {
    out.push(
      `${summary.bench}: ${verdict.target} server CPU/op ${verdict.cpuRatio.toFixed(2)} × ceiling ` +
        `(goal ≤ ${verdict.maxCpuRatio.toFixed(2)}) → ${verdict.pass ? "PASS" : "MISS"}`,
    );
  }
  return out.join("\n");
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

function at(run: readonly Measurement[], index: number): Measurement {
  const measurement = run[index];
  if (measurement === undefined) throw new Error(`run lacks target #${index}`);
  return measurement;
}
