/** A schema change, applied once, in order of `version`. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Every schema change so far. Append only: never edit one that has shipped. */
export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'flows and audit log',
    sql: `
      CREATE TABLE flows (
        flow_id     TEXT PRIMARY KEY,
        client_id   TEXT NOT NULL,
        user_id     TEXT,
        upstreams   TEXT NOT NULL,
        status      TEXT NOT NULL,
        sequence    INTEGER NOT NULL,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL
      );
      CREATE INDEX flows_user ON flows (user_id);
      CREATE TABLE audit_log (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        at          TEXT NOT NULL,
        flow_id     TEXT,
        user_id     TEXT,
        event       TEXT NOT NULL,
        detail      TEXT NOT NULL,
        dedupe_key  TEXT UNIQUE
      );
      CREATE INDEX audit_log_flow ON audit_log (flow_id);
    `,
  },
];
