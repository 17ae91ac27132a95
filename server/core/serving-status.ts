/** Whether a service (or, under the empty name, the whole server) takes calls. */
export type ServingState = "serving" | "not_serving";

/** Receives every change of a service's serving state. */
export type ServingStateListener = (service: string, state: ServingState) => void;

/**
 * The serving state of each served service plus the overall `""` entry, as
 * the gRPC health protocol reports it. Listeners hear only real changes.
 */
export class ServingStatus {
  private readonly states = new Map<string, ServingState>();
  private readonly listeners = new Set<ServingStateListener>();

  /** Starts with the overall entry serving; services are added with {@link set}. */
  constructor() {
    this.states.set("", "serving");
  }

  /** The state of `service`, or undefined when the server does not serve it. */
  get(service: string): ServingState | undefined {
    return this.states.get(service);
  }

  /** Every known service with its state, the overall `""` entry included. */
  entries(): IterableIterator<[string, ServingState]> {
    return this.states.entries();
  }

  /** Sets the state of one service (registering it when new). */
  set(service: string, state: ServingState): void {
    if (this.states.get(service) === state) return;
    this.states.set(service, state);
    for (const listener of this.listeners) listener(service, state);
  }

  /** Marks everything not serving: the first step of a graceful shutdown. */
  setAllNotServing(): void {
    for (const service of [...this.states.keys()]) this.set(service, "not_serving");
  }

  /** Subscribes to changes; returns the idempotent unsubscribe function. */
  subscribe(listener: ServingStateListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
