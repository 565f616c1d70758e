import pg from 'pg';
import { PostgresEventChannel } from './postgres-events.js';
import type { Migration } from './migrations.js';
import { postgresMigrations } from './postgres-migrations.js';
import { applyMigrations, SqlStore, type SqlDatabase, type SqlExecutor } from './sql-store.js';

const int8Oid = 20;

// BIGINT columns hold epoch seconds and counts, far below 2^53: numbers, as SQLite gives them.
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === int8Oid ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

const positional = new Map<string, { name: string; text: string }>();

/**
 * The shared store writes `?` placeholders; PostgreSQL wants `$1, $2, …`. Each distinct statement
 * is translated once and gets a name, so every pooled connection prepares it once.
 */
function statement(sql: string): { name: string; text: string } {
  let found = positional.get(sql);
  if (!found) {
    let n = 0;
    found = { name: `cg_${positional.size}`, text: sql.replace(/\?/g, () => `$${++n}`) };
    positional.set(sql, found);
  }
  return found;
}

type Queryable = pg.Pool | pg.PoolClient;

/** Statements on a pool (each on any connection) or on one client (inside a transaction). */
class PgExecutor implements SqlExecutor {
  constructor(protected readonly target: Queryable) {}

  async run(sql: string, params: unknown[] = []): Promise<{ changes: number }> {
    return { changes: (await this.target.query({ ...statement(sql), values: params })).rowCount ?? 0 };
  }

  async get<T>(sql: string, params: unknown[] = []): Promise<T | undefined> {
    return (await this.target.query({ ...statement(sql), values: params })).rows[0] as T | undefined;
  }

  async all<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    return (await this.target.query({ ...statement(sql), values: params })).rows as T[];
  }

  async exec(sql: string): Promise<void> {
    // No parameters: the simple protocol, which accepts several statements at once.
    await this.target.query(sql);
  }
}

/** Runs `work` in a transaction on `client`; rolled back when it throws. */
async function inTransaction<T>(client: pg.PoolClient, work: (tx: SqlExecutor) => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await work(new PgExecutor(client));
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}

/** A `pg` pool as a {@link SqlDatabase}: a transaction takes one connection for its duration. */
class PgPoolDatabase extends PgExecutor implements SqlDatabase {
  constructor(private readonly pool: pg.Pool) {
    super(pool);
  }

  async transaction<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      return await inTransaction(client, work);
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    // pg's end() waits for checked-out clients (transactions under way) to come back.
    await this.pool.end();
  }
}

/** One connection as a {@link SqlDatabase}, for migrations under an advisory lock. */
class PgClientDatabase extends PgExecutor implements SqlDatabase {
  constructor(private readonly client: pg.PoolClient) {
    super(client);
  }

  transaction<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return inTransaction(this.client, work);
  }

  async close(): Promise<void> {
    this.client.release();
  }
}

// Any constant both processes agree on: it names the lock, not a row.
const migrationLock = 0x43475354; // "CGST"

/**
 * Applies pending PostgreSQL migrations while holding an advisory lock, so that processes starting
 * together against one database apply each migration once; returns the schema version.
 */
export async function migratePostgres(pool: pg.Pool, migrations: readonly Migration[] = postgresMigrations): Promise<number> {
  const db = new PgClientDatabase(await pool.connect());
  try {
    await db.run('SELECT pg_advisory_lock(?)', [migrationLock]);
    try {
      return await applyMigrations(db, migrations);
    } finally {
      await db.run('SELECT pg_advisory_unlock(?)', [migrationLock]);
    }
  } finally {
    await db.close();
  }
}

/** Options of {@link PostgresStore.open}. */
export interface PostgresStoreOptions {
  /** Connections the pool opens at most. */
  poolSize: number;
}

/**
 * The PostgreSQL implementation of the gateway's store, for any number of web and worker
 * processes: a `pg` pool, migrations applied on open, the same SQL and semantics as SQLite.
 */
export class PostgresStore extends SqlStore {
  private constructor(db: PgPoolDatabase, events: PostgresEventChannel) {
    super(db, { jsonField: (column, field) => `((${column}::jsonb) ->> '${field}')` }, events);
  }

  /** Connects to `url` (a libpq connection URL) and brings the schema up to date. */
  static async open(url: string, options: PostgresStoreOptions): Promise<PostgresStore> {
    const pool = createPool(url, options);
    try {
      await migratePostgres(pool);
    } catch (error) {
      await pool.end().catch(() => {});
      throw error;
    }
    return new PostgresStore(new PgPoolDatabase(pool), new PostgresEventChannel(pool, url));
  }
}

/** A pool with the store's type parsing; exported for migration tests. */
export function createPool(url: string, options: PostgresStoreOptions): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: options.poolSize, types });
  // An idle connection that breaks (server restart, network) is dropped by the pool and replaced
  // on the next query; without a listener the error would end the process.
  pool.on('error', () => {});
  return pool;
}
