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
  /**
   * CPU time of the load processes (all of them) in the window per completed
   * operation: on a 2-core machine they compete with the server, so a
   * client-heavy protocol lowers ops/s without costing the server anything.
   */
  readonly clientCpuMicrosPerOp: number;
  /** Figures particular to a kind of measurement (e.g. `KB/stream` of a watch fan-out), each an extra column. */
  readonly extras?: Readonly<Record<string, number>>;
}

/** Where a target's row goes in the report; see `BenchTarget`. */
export interface RowLayout {
  /** Rows of one section share a table; the ceiling heads every table. */
  readonly section?: string;
  /** Label of the target this one is compared with (its peer, e.g. etcd). */
  readonly peer?: string;
}

/** One row of a bench's table: medians over the runs. */
export interface SummaryRow extends Measurement {
  /** Median over the runs of this run's ops/s ÷ the same run's ceiling ops/s. */
  readonly opsRatio: number;
  /** Median over the runs of this run's CPU/op ÷ the same run's ceiling CPU/op. */
  readonly cpuRatio: number;
  readonly section?: string;
  /** The peer's label and the median over the runs of this run's ops/s ÷ the same run's peer ops/s. */
  readonly peer?: { readonly label: string; readonly opsRatio: number };
}

/**
 * One goal of a bench judged against the medians. Printed as PASS or MISS,
 * never asserted: this machine is too noisy for a gate.
 */
export interface Check {
  /** What is judged, e.g. `register ops/s ÷ etcd put ops/s`. */
  readonly name: string;
  /** The measured value as printed, e.g. `1.21`. */
  readonly value: string;
  /** The goal as printed, e.g. `≥ 1.00`. */
  readonly goal: string;
  /** Undefined when it could not be judged; `note` says why. */
  readonly pass: boolean | undefined;
  readonly note?: string;
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
  /** The bench's goals, judged (see `Bench.checks`). */
  readonly checks?: readonly Check[];
}

/**
 * Reduces runs to one row per target. Each run holds the ceiling first, then
 * the targets, measured back to back; ratios are taken within a run (against
 * the ceiling measured next to it) before the median, so a machine that gets
 * slower between runs shifts both sides of a ratio alike.
 */
export function summarize(
  bench: string,
  runs: readonly (readonly Measurement[])[],
  goal: BenchGoal | undefined,
  layout: readonly RowLayout[] = [],
): BenchSummary {
  const first = runs[0];
  if (first === undefined) throw new Error("no runs to summarize");
  const rows = first.map((_, index): SummaryRow => {
    const of = (pick: (m: Measurement) => number): number => median(runs.map((run) => pick(at(run, index))));
    const ratio = (pick: (m: Measurement) => number, to = 0): number => median(runs.map((run) => pick(at(run, index)) / pick(at(run, to))));
    const { section, peer } = layout[index] ?? {};
    const peerIndex = peer === undefined ? -1 : first.findIndex((m) => m.label === peer);
    if (peer !== undefined && peerIndex < 0) throw new Error(`target "${at(first, index).label}" names peer "${peer}", which the bench does not measure`);
    const extraKeys = Object.keys(at(first, index).extras ?? {});
    return {
      ...(section !== undefined ? { section } : {}),
      ...(peer !== undefined ? { peer: { label: peer, opsRatio: ratio((m) => m.opsPerSecond, peerIndex) } } : {}),
      ...(extraKeys.length > 0 ? { extras: Object.fromEntries(extraKeys.map((key) => [key, of((m) => m.extras?.[key] ?? Number.NaN)])) } : {}),
      label: at(first, index).label,
      opsPerSecond: of((m) => m.opsPerSecond),
      p50Ms: of((m) => m.p50Ms),
      p90Ms: of((m) => m.p90Ms),
      p99Ms: of((m) => m.p99Ms),
      cpuMicrosPerOp: of((m) => m.cpuMicrosPerOp),
      rssMiB: of((m) => m.rssMiB),
      gcMicrosPerOp: of((m) => m.gcMicrosPerOp),
      clientCpuMicrosPerOp: of((m) => m.clientCpuMicrosPerOp),
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

interface Column {
  readonly title: string;
  readonly cell: (row: SummaryRow) => string;
}

const columns: readonly Column[] = [
  { title: "target", cell: (row) => row.label },
  { title: "ops/s", cell: (row) => fixed(row.opsPerSecond, 0) },
  { title: "p50 ms", cell: (row) => fixed(row.p50Ms, 2) },
  { title: "p90 ms", cell: (row) => fixed(row.p90Ms, 2) },
  { title: "p99 ms", cell: (row) => fixed(row.p99Ms, 2) },
  { title: "CPU µs/op", cell: (row) => fixed(row.cpuMicrosPerOp, 1) },
  { title: "RSS MiB", cell: (row) => fixed(row.rssMiB, 0) },
  { title: "ops ÷ ceiling", cell: (row) => fixed(row.opsRatio, 2) },
  { title: "CPU/op ÷ ceiling", cell: (row) => fixed(row.cpuRatio, 2) },
  { title: "GC µs/op", cell: (row) => fixed(row.gcMicrosPerOp, 1) },
  { title: "client CPU µs/op", cell: (row) => fixed(row.clientCpuMicrosPerOp, 1) },
];

const peerColumn: Column = {
  title: "ops ÷ peer",
  cell: (row) => (row.peer === undefined ? "" : `${fixed(row.peer.opsRatio, 2)} × ${row.peer.label}`),
};

/** `value` with `digits` decimals; a dash for NaN (a figure the host cannot tell). */
function fixed(value: number, digits: number): string {
  return Number.isNaN(value) ? "—" : value.toFixed(digits);
}

/**
 * The tables of a summary (medians of `runs` runs): one per section, each
 * headed by the ceiling, with a peer column and the sections' extra columns
 * where they have any; then the verdict and check lines.
 */
export function formatSummary(summary: BenchSummary): string {
  const [ceiling, ...targets] = summary.rows;
  if (ceiling === undefined) throw new Error("a summary has at least the ceiling row");
  const sections = [...new Set(targets.map((row) => row.section))];
  const out: string[] = [];
  for (const section of sections.length > 0 ? sections : [undefined]) {
    const title = section === undefined ? summary.bench : `${summary.bench} · ${section}`;
    if (out.length > 0) out.push("");
    out.push(`${title}: median of ${summary.runs.length} runs`, ...formatTable([ceiling, ...targets.filter((row) => row.section === section)]));
  }
  const verdict = summary.verdict;
  if (verdict !== undefined) {
    out.push(
      `${summary.bench}: ${verdict.target} server CPU/op ${verdict.cpuRatio.toFixed(2)} × ceiling ` +
        `(goal ≤ ${verdict.maxCpuRatio.toFixed(2)}) → ${verdict.pass ? "PASS" : "MISS"}`,
    );
  }
  if (summary.checks !== undefined && summary.checks.length > 0) {
    out.push("");
    for (const check of summary.checks) {
      const outcome = check.pass === undefined ? "not judged" : check.pass ? "PASS" : "MISS";
      out.push(`${summary.bench}: ${check.name} ${check.value} (goal ${check.goal}) → ${outcome}${check.note !== undefined ? ` (${check.note})` : ""}`);
    }
  }
  return out.join("\n");
}

function formatTable(rows: readonly SummaryRow[]): string[] {
  const extraKeys = [...new Set(rows.flatMap((row) => Object.keys(row.extras ?? {})))];
  const shown: readonly Column[] = [
    ...columns,
    ...(rows.some((row) => row.peer !== undefined) ? [peerColumn] : []),
    ...extraKeys.map((key): Column => ({ title: key, cell: (row) => formatExtra(row.extras?.[key]) })),
  ];
  const cells = [shown.map((c) => c.title), ...rows.map((row) => shown.map((c) => c.cell(row)))];
  const widths = shown.map((_, i) => Math.max(...cells.map((line) => (line[i] as string).length)));
  const lines = cells.map((line) => line.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number))).join("  "));
  lines.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  return lines;
}

/** Whole numbers as such, others with one decimal; blank where a row lacks the figure. */
function formatExtra(value: number | undefined): string {
  if (value === undefined) return "";
  return Number.isInteger(value) ? String(value) : fixed(value, 1);
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

/** The summary row labelled `label`, if any. */
export function findRow(rows: readonly SummaryRow[], label: string): SummaryRow | undefined {
  return rows.find((r) => r.label === label);
}

/**
 * The summary row labelled `label`.
 *
 * @throws Error when there is none (a bench's checks name a target it did not run)
 */
export function requireRow(rows: readonly SummaryRow[], label: string): SummaryRow {
  const found = findRow(rows, label);
  if (found === undefined) throw new Error(`no "${label}" row`);
  return found;
}
