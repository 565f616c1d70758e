import pg from 'pg';
import type { EventChannel, FleetEvent } from './store.js';

/** The PostgreSQL channel every gateway process listens on. */
export const eventChannelName = 'consent_gateway_events';

const reconnectMs = 500;

/**
 * The event channel of a PostgreSQL store: `NOTIFY` through the pool, `LISTEN` on one connection
 * of its own, opened on the first subscription (a worker never subscribes, so it never holds one).
 *
 * Chosen over a short cache TTL because a revoke must be refused fleet-wide within 1 s while a warm
 * token check stays one Map lookup: a NOTIFY reaches every listener in milliseconds, and a TTL under
 * 1 s would send most requests back to the database. What NOTIFY cannot promise (delivery while the
 * listening connection is down) is covered by {@link live} and {@link generation}: caches trust
 * nothing while the connection is down and drop what they held when it comes back.
 */
export class PostgresEventChannel implements EventChannel {
  readonly #listeners = new Set<(event: FleetEvent) => void>();
  #client: pg.Client | undefined;
  #live = false;
  #generation = 0;
  #closed = false;
  #starting: Promise<void> | undefined;
  #retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly url: string,
  ) {}

  async publish(event: FleetEvent): Promise<void> {
    await this.pool.query('SELECT pg_notify($1, $2)', [eventChannelName, JSON.stringify(event)]);
  }

  subscribe(listener: (event: FleetEvent) => void): () => void {
    this.#listeners.add(listener);
    this.#starting ??= this.#listen();
    return () => this.#listeners.delete(listener);
  }

  generation(): number {
    return this.#generation;
  }

  live(): boolean {
    return this.#live;
  }

  /** Resolves once the listening connection is up (or failed its first attempt and retries in the background). */
  ready(): Promise<void> {
    return this.#starting ?? Promise.resolve();
  }

  async #listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url });
    const lost = () => {
      if (this.#client !== client) return;
      this.#client = undefined;
      this.#live = false;
      this.#generation += 1;
      client.end().catch(() => {});
      if (!this.#closed) this.#retry = setTimeout(() => void this.#listen(), reconnectMs);
    };
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (message) => {
      if (message.channel !== eventChannelName || !message.payload) return;
      let event: FleetEvent;
      try {
        event = JSON.parse(message.payload) as FleetEvent;
      } catch {
        return;
      }
      for (const listener of [...this.#listeners]) listener(event);
    });
    this.#client = client;
    try {
      await client.connect();
      await client.query(`LISTEN ${eventChannelName}`);
      if (this.#closed || this.#client !== client) {
        await client.end().catch(() => {});
        return;
      }
      // Events sent while no connection listened are lost: caches filled before now start over.
      this.#generation += 1;
      this.#live = true;
    } catch {
      lost();
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#live = false;
    clearTimeout(this.#retry);
    const client = this.#client;
    this.#client = undefined;
    this.#listeners.clear();
    await client?.end().catch(() => {});
  }
}
