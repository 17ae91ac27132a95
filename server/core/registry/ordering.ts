/**
 * The orders in which the registry lists records. Strings compare by UTF-16
 * code units (not locale), so every process orders the same way.
 */
import type { InstanceRecord } from "./model.js";

/** Weight descending, then instance_id ascending: the order of Resolve and FailoverCandidates. */
export function byWeightThenId(a: InstanceRecord, b: InstanceRecord): number {
  return b.instance.weight - a.instance.weight || compareText(a.instance.instanceId, b.instance.instanceId);
}

/** instance_id ascending: the candidate order of round-robin. */
export function byId(a: InstanceRecord, b: InstanceRecord): number {
  return compareText(a.instance.instanceId, b.instance.instanceId);
}

/** service_name, then instance_id, ascending: the order of snapshots and stale listings. */
export function byServiceThenId(a: InstanceRecord, b: InstanceRecord): number {
  return compareText(a.instance.serviceName, b.instance.serviceName) || byId(a, b);
}

/** Code-unit order of two strings, as a comparator result. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
