/**
 * Every statement the tracing store runs, in one place so the tests can
 * `EXPLAIN QUERY PLAN` exactly these and prove which index each one uses
 * (see `tracingSchema` for why each index exists). Positional parameters,
 * in the order the comments give.
 */

/** The span columns queries read, in the order of `SpanRow`. */
const spanColumns = "span_id, parent_span_id, service, operation, kind, status, start_ns, end_ns, attrs";
const traceColumns =
  "trace_key, trace_id, first_seen_ms, span_count, error_count, min_start_ns, max_end_ns, root_span_id, root_service, root_operation, root_start_ns";
/** The key of trace `?` (a point lookup in the `UNIQUE (trace_id)` index). */
const keyOf = "(SELECT trace_key FROM traces WHERE trace_id = ?)";

/** The tracing store's SQL by purpose. */
export const tracingQueries = {
  /** (trace_id) → the trace's row. */
  traceById: `SELECT ${traceColumns} FROM traces WHERE trace_id = ?`,
  /** (trace_key, span_id) → 1 when the span is stored. */
  hasSpan: "SELECT 1 FROM spans WHERE trace_key = ? AND span_id = ?",
  /** (trace_id, first_seen_ms, span_count, error_count, min_start_ns, max_end_ns, duration_ns, root…×4). */
  insertTrace: `INSERT INTO traces (trace_id, first_seen_ms, span_count, error_count, min_start_ns, max_end_ns, duration_ns,
      root_span_id, root_service, root_operation, root_start_ns)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  /** (span_count, error_count, min_start_ns, max_end_ns, duration_ns, root…×4, trace_key). */
  updateTrace: `UPDATE traces SET span_count = ?, error_count = ?, min_start_ns = ?, max_end_ns = ?, duration_ns = ?,
      root_span_id = ?, root_service = ?, root_operation = ?, root_start_ns = ?
    WHERE trace_key = ?`,
  /** (trace_key, span_id, parent_span_id, service, operation, kind, status, start_ns, end_ns, attrs, duration_ns). */
  insertSpan: `INSERT INTO spans (trace_key, ${spanColumns}, duration_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  /** (trace_id) → the trace's spans. */
  spansOfTrace: `SELECT ${spanColumns} FROM spans WHERE trace_key = ${keyOf}`,
  /** (trace_id, span_id) → one span. */
  span: `SELECT ${spanColumns} FROM spans WHERE trace_key = ${keyOf} AND span_id = ?`,
  /** (trace_id, parent_span_id) → the parent's children, unordered. */
  children: `SELECT ${spanColumns} FROM spans WHERE trace_key = ${keyOf} AND parent_span_id = ?`,
  /** (service, since_ns, limit) → the durations of the service's latest spans. */
  serviceDurations: "SELECT duration_ns FROM spans WHERE service = ? AND start_ns >= ? ORDER BY start_ns DESC LIMIT ?",
  /** (limit) → ids of traces without a root, oldest first. */
  incompleteTraces: "SELECT trace_id FROM traces WHERE root_span_id IS NULL ORDER BY trace_key LIMIT ?",
  /** (threshold_ns, limit) → trace rows over the threshold, slowest first, then by trace_id. */
  anomalousTraces: `SELECT ${traceColumns} FROM traces WHERE duration_ns > ? ORDER BY duration_ns DESC, trace_id ASC LIMIT ?`,
  /** (cutoff_ms, limit) → (trace_key, span_count) of traces first seen before the cutoff, oldest first. */
  expiredTraces: "SELECT trace_key, span_count FROM traces WHERE first_seen_ms < ? ORDER BY first_seen_ms LIMIT ?",
  /** (trace_key). */
  deleteSpans: "DELETE FROM spans WHERE trace_key = ?",
  /** (trace_key). */
  deleteTrace: "DELETE FROM traces WHERE trace_key = ?",
  /**
   * () → distinct service names, ascending: a skip-scan of `spans_by_service`
   * (one index seek per service, not a read of every span).
   */
  serviceNames: `WITH RECURSIVE names(service) AS (
      SELECT min(service) FROM spans
      UNION ALL
      SELECT (SELECT min(service) FROM spans WHERE service > names.service) FROM names WHERE names.service IS NOT NULL
    ) SELECT service FROM names WHERE service IS NOT NULL`,
  /** (child service, since_ns) → calls into the service by parent service. */
  dependencyCalls: `SELECT p.service AS parentService, c.service AS childService, count(*) AS callCount
    FROM spans c JOIN spans p ON p.trace_key = c.trace_key AND p.span_id = c.parent_span_id
    WHERE c.service = ? AND c.start_ns >= ? AND p.service <> c.service
    GROUP BY p.service`,
} as const;
