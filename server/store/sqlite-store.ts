import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import sqlite3 from 'sqlite3';
import { LocalEventChannel } from './local-events.js';
import { migrations as defaultMigrations, type Migration } from './migrations.js';
import type { StoreHealth } from './store.js';
import { applyMigrations, SqlStore, type SqlDatabase, type SqlExecutor } from './sql-store.js';

/** Promise wrapper around one sqlite3 connection. */
class Database implements SqlDatabase {
  // sqlite3 shares one connection, so two interleaved BEGINs would collide: transactions queue here.
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly db: sqlite3.Database) {}

  static open(file: string): Promise<Database> {
    return new Promise((resolve, reject) => {
      const db = new sqlite3.Database(file, (error) => (error ? reject(error) : resolve(new Database(db))));
    });
  }

  run(sql: string, params: unknown[] = []): Promise<{ changes: number }> {
    return new Promise((resolve, reject) => {
      this.db.run(sql, params, function onRun(error) {
        if (error) reject(error);
        else resolve({ changes: this.changes });
      });
    });
  }

  get<T>(sql: string, params: unknown[] = []): Promise<T | undefined> {
    return new Promise((resolve, reject) => {
      this.db.get(sql, params, (error, row) => (error ? reject(error) : resolve(row as T | undefined)));
    });
  }

  all<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    return new Promise((resolve, reject) => {
      this.db.all(sql, params, (error, rows) => (error ? reject(error) : resolve(rows as T[])));
    });
  }

  exec(sql: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.db.exec(sql, (error) => (error ? reject(error) : resolve()));
    });
  }

  transaction<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    const next = this.tail.then(async () => {
      await this.exec('BEGIN IMMEDIATE');
      try {
        const result = await work(this);
        await this.exec('COMMIT');
        return result;
      } catch (error) {
        await this.exec('ROLLBACK').catch(() => {});
        throw error;
      }
    });
    this.tail = next.catch(() => {});
    return next;
  }

  async close(): Promise<void> {
    await this.tail;
    await new Promise<void>((resolve, reject) => {
      this.db.close((error) => (error ? reject(error) : resolve()));
    });
  }
}

/** Applies pending SQLite migrations in order, each in its own transaction; returns the schema version. */
export function migrate(db: Database, migrations: readonly Migration[] = defaultMigrations): Promise<number> {
  return applyMigrations(db, migrations);
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
      await db.exec('PRAGMA journal_mode = WAL');
      await db.exec('PRAGMA synchronous = NORMAL');
      await db.exec('PRAGMA foreign_keys = ON');
      await db.exec('PRAGMA busy_timeout = 5000');
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
