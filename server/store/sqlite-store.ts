import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import sqlite3 from 'sqlite3';
import { LocalEventChannel } from './local-events.js';
import { migrations as defaultMigrations, type Migration } from './migrations.js';
import type { StoreHealth } from './store.js';
import { applyMigrations, SqlStore, type SqlDatabase, type SqlExecutor } from './sql-store.js';

/** How many prepared statements a connection keeps. */
const maxPreparedStatements = 256;

/** Promise wrapper around one sqlite3 connection. */
class Database implements SqlDatabase {
  // sqlite3 shares one connection, so two interleaved BEGINs would collide: transactions queue here.
  private tail: Promise<unknown> = Promise.resolve();

  /**
   * Prepared statements by their SQL, oldest first, for `run` and `all` (both step to the end).
   * Preparing costs more than running a short statement, and the store runs the same few
   * statements again and again.
   */
  private readonly statements = new Map<string, Promise<sqlite3.Statement>>();

  constructor(private readonly db: sqlite3.Database) {}

  static open(file: string): Promise<Database> {
    return new Promise((resolve, reject) => {
      const db = new sqlite3.Database(file, (error) => (error ? reject(error) : resolve(new Database(db))));
    });
  }

  /** The statement for `sql`, prepared once; SQL that fails to prepare rejects, and is not kept. */
  private statement(sql: string): Promise<sqlite3.Statement> {
    const cached = this.statements.get(sql);
    if (cached) return cached;
    const prepared = new Promise<sqlite3.Statement>((resolve, reject) => {
      const statement = this.db.prepare(sql, (error: Error | null) => (error ? reject(error) : resolve(statement)));
    });
    this.statements.set(sql, prepared);
    prepared.catch(() => {
      if (this.statements.get(sql) === prepared) this.statements.delete(sql);
    });
    if (this.statements.size > maxPreparedStatements) {
      const [oldest, evicted] = this.statements.entries().next().value as [string, Promise<sqlite3.Statement>];
      this.statements.delete(oldest);
      // Finalizing waits for the statement's queued calls.
      evicted.then((statement) => statement.finalize(), () => {});
    }
    return prepared;
  }

  async run(sql: string, params: unknown[] = []): Promise<{ changes: number }> {
    const statement = await this.statement(sql);
    return new Promise((resolve, reject) => {
      statement.run(params, function onRun(error) {
        if (error) reject(error);
        else resolve({ changes: this.changes });
      });
    });
  }

  get<T>(sql: string, params: unknown[] = []): Promise<T | undefined> {
    // Not prepared once: a statement kept after stopping at a row would hold its read transaction
    // open, and with it a snapshot that hides other connections' later writes.
    return new Promise((resolve, reject) => {
      this.db.get(sql, params, (error, row) => (error ? reject(error) : resolve(row as T | undefined)));
    });
  }

  async all<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    const statement = await this.statement(sql);
    return new Promise((resolve, reject) => {
      statement.all(params, (error, rows) => (error ? reject(error) : resolve(rows as T[])));
    });
  }

  exec(sql: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.db.exec(sql, (error) => (error ? reject(error) : resolve()));
    });
  }

  transaction<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    const next = this.tail.then(async () => {
      await this.run('BEGIN IMMEDIATE');
      try {
        const result = await work(this);
        await this.run('COMMIT');
        return result;
      } catch (error) {
        await this.run('ROLLBACK').catch(() => {});
        throw error;
      }
    });
    this.tail = next.catch(() => {});
    return next;
  }

  async close(): Promise<void> {
    await this.tail;
    const statements = [...this.statements.values()];
    this.statements.clear();
    for (const prepared of await Promise.allSettled(statements)) {
      if (prepared.status === 'fulfilled') await new Promise<void>((resolve) => prepared.value.finalize(() => resolve()));
    }
    await new Promise<void>((resolve, reject) => {
      this.db.close((error) => (error ? reject(error) : resolve()));
    });
  }
}

/** Applies pending SQLite migrations in order, each in its own transaction; returns the schema version. */
export function migrate(db: Database, migrations: readonly Migration[] = defaultMigrations): Promise<number> {
  return applyMigrations(db, migrations);
}

/** How long a statement waits for another connection's lock. */
const busyTimeoutMs = 5000;

/**
 * Puts the file in WAL mode. The switch needs the file to itself and SQLite answers it busy at
 * once, without waiting, while another process opens the same file: so it is retried for as
 * long as a statement would wait (the mode sticks to the file, so the other process may have
 * made the switch meanwhile).
 */
async function switchToWal(db: Database): Promise<void> {
  const deadline = Date.now() + busyTimeoutMs;
  for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
    try {
      await db.exec('PRAGMA journal_mode = WAL');
      return;
    } catch (error) {
      if ((error as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() + wait > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

/** The SQLite implementation of the gateway's store: one file, WAL mode, migrations applied on open. */
export class SqliteStore extends SqlStore {
  private constructor(
    db: Database,
    /** The database file. */
    readonly file: string,
    /** Device and inode of the file as opened; absent for `:memory:`. */
    private readonly opened?: FileIdentity,
  ) {
    super(db, { jsonField: (column, field) => `json_extract(${column}, '$.${field}')` }, new LocalEventChannel());
  }

  /**
   * Also fails when the path no longer names the file the store holds open (deleted, or replaced
   * by another file): writes would go on into an unlinked inode and vanish at the next restart.
   */
  override async health(): Promise<StoreHealth> {
    if (this.opened) {
      const now = await fileIdentity(this.file);
      if (!now) return { ok: false, error: 'the database file was deleted while the store holds it open' };
      if (now.dev !== this.opened.dev || now.ino !== this.opened.ino) return { ok: false, error: 'the database file was replaced by another file while the store holds it open' };
    }
    return super.health();
  }

  /** Opens (creating when needed) the database file and brings its schema up to date. */
  static async open(file: string): Promise<SqliteStore> {
    if (file !== ':memory:') await mkdir(path.dirname(file), { recursive: true });
    const db = await Database.open(file);
    try {
      await db.exec(`PRAGMA busy_timeout = ${busyTimeoutMs}`);
      await switchToWal(db);
      await db.exec('PRAGMA synchronous = NORMAL');
      await db.exec('PRAGMA foreign_keys = ON');
      await migrate(db);
    } catch (error) {
      await db.close().catch(() => {});
      throw error;
    }
    return new SqliteStore(db, file, file === ':memory:' ? undefined : await fileIdentity(file));
  }
}

interface FileIdentity {
  dev: number;
  ino: number;
}

async function fileIdentity(file: string): Promise<FileIdentity | undefined> {
  try {
    const { dev, ino } = await stat(file);
    return { dev, ino };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Internal handle for migration tests. */
export { Database as SqliteDatabase };
