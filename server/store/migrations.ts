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
  {
    version: 2,
    name: 'oauth server models',
    sql: `
      CREATE TABLE oauth_models (
        model       TEXT NOT NULL,
        key         TEXT NOT NULL,
        payload     TEXT NOT NULL,
        grant_id    TEXT,
        session_uid TEXT,
        user_code   TEXT,
        expires_at  INTEGER,
        consumed_at INTEGER,
        PRIMARY KEY (model, key)
      );
      CREATE INDEX oauth_models_grant ON oauth_models (grant_id) WHERE grant_id IS NOT NULL;
      CREATE INDEX oauth_models_session_uid ON oauth_models (model, session_uid) WHERE session_uid IS NOT NULL;
      CREATE INDEX oauth_models_user_code ON oauth_models (model, user_code) WHERE user_code IS NOT NULL;
      CREATE INDEX oauth_models_expiry ON oauth_models (expires_at) WHERE expires_at IS NOT NULL;
    `,
  },
  {
    version: 3,
    name: 'consents and browser bindings',
    sql: `
      CREATE TABLE consents (
        user_id     TEXT NOT NULL,
        client_id   TEXT NOT NULL,
        upstreams   TEXT NOT NULL,
        scopes      TEXT NOT NULL,
        flow_id     TEXT NOT NULL,
        granted_at  TEXT NOT NULL,
        PRIMARY KEY (user_id, client_id)
      );
      CREATE TABLE flow_bindings (
        flow_id      TEXT PRIMARY KEY,
        browser_hash TEXT NOT NULL,
        created_at   TEXT NOT NULL
      );
    `,
  },
  {
    version: 4,
    name: 'upstream connections',
    sql: `
      CREATE TABLE upstream_clients (
        upstream      TEXT PRIMARY KEY,
        issuer        TEXT NOT NULL,
        client_id     TEXT NOT NULL,
        client_secret TEXT,
        metadata      TEXT NOT NULL,
        registered_at TEXT NOT NULL
      );
      CREATE TABLE upstream_tokens (
        user_id       TEXT NOT NULL,
        upstream      TEXT NOT NULL,
        access_token  TEXT NOT NULL,
        refresh_token TEXT,
        token_type    TEXT NOT NULL,
        scopes        TEXT NOT NULL,
        expires_at    INTEGER,
        status        TEXT NOT NULL,
        connected_at  TEXT NOT NULL,
        last_used_at  TEXT,
        updated_at    TEXT NOT NULL,
        PRIMARY KEY (user_id, upstream)
      );
      CREATE TABLE upstream_authorizations (
        state_hash    TEXT PRIMARY KEY,
        flow_id       TEXT NOT NULL,
        upstream      TEXT NOT NULL,
        user_id       TEXT NOT NULL,
        code_verifier TEXT NOT NULL,
        redirect_uri  TEXT NOT NULL,
        code          TEXT,
        callback      TEXT,
        expires_at    INTEGER NOT NULL,
        used_at       INTEGER
      );
      CREATE TABLE exchange_results (
        key        TEXT PRIMARY KEY,
        result     TEXT NOT NULL,
        created_at TEXT NOT NULL
      );
    `,
  },
  {
    version: 5,
    name: 'upstream token versions',
    sql: `
      ALTER TABLE upstream_tokens ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    `,
  },
  {
    version: 6,
    name: 'url elicitations',
    sql: `
      CREATE TABLE elicitations (
        id           TEXT PRIMARY KEY,
        user_id      TEXT NOT NULL,
        client_id    TEXT NOT NULL,
        upstream     TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        expires_at   INTEGER NOT NULL,
        completed_at INTEGER
      );
    `,
  },
  {
    version: 7,
    name: 'fleet: rate limits and key checks',
    sql: `
      CREATE TABLE rate_limit_hits (
        key TEXT NOT NULL,
        at  INTEGER NOT NULL
      );
      CREATE INDEX rate_limit_hits_key_at ON rate_limit_hits (key, at);
      CREATE INDEX rate_limit_hits_at ON rate_limit_hits (at);
      CREATE TABLE key_checks (
        ring         TEXT PRIMARY KEY,
        fingerprints TEXT NOT NULL,
        active       TEXT NOT NULL,
        written_at   TEXT NOT NULL
      );
    `,
  },
  {
    version: 8,
    name: 'audit trail',
    sql: `
      CREATE TABLE audit_entries (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        at          TEXT NOT NULL,
        kind        TEXT NOT NULL,
        user_id     TEXT,
        client_id   TEXT,
        upstream    TEXT,
        outcome     TEXT NOT NULL,
        flow_id     TEXT,
        source_ip   TEXT,
        actor       TEXT,
        dedupe_key  TEXT UNIQUE
      );
      CREATE INDEX audit_entries_user ON audit_entries (user_id, id);
      CREATE INDEX audit_entries_client ON audit_entries (client_id, id);
      CREATE INDEX audit_entries_at ON audit_entries (at);
      CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
      CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    `,
  },
  {
    version: 9,
    name: 'upstream token issuer',
    sql: `
      ALTER TABLE upstream_tokens ADD COLUMN issuer TEXT;
    `,
  },
  {
    version: 10,
    name: 'upstream step-up scopes',
    sql: `
      ALTER TABLE upstream_tokens ADD COLUMN required_scopes TEXT;
    `,
  },
  {
    version: 11,
    name: 'upstream authorization issuer',
    sql: `
      ALTER TABLE upstream_authorizations ADD COLUMN issuer TEXT;
      ALTER TABLE upstream_authorizations ADD COLUMN iss_required INTEGER;
    `,
  },
  {
    version: 12,
    name: 'upstream token DPoP key',
    sql: `
      ALTER TABLE upstream_tokens ADD COLUMN dpop_key TEXT;
    `,
  },
];
