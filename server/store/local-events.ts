import type { EventChannel, FleetEvent } from './store.js';

/**
 * The event channel of a store only one process uses (SQLite: one file, one gateway process).
 * Every event reaches this process's subscribers at once, and none can be missed, so it is always live.
 */
export class LocalEventChannel implements EventChannel {
  readonly #listeners = new Set<(event: FleetEvent) => void>();

  async publish(event: FleetEvent): Promise<void> {
    for (const listener of [...this.#listeners]) listener(event);
  }

  subscribe(listener: (event: FleetEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  generation(): number {
    return 0;
  }

  live(): boolean {
    return true;
  }

  async close(): Promise<void> {
    this.#listeners.clear();
  }
}
