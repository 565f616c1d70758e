/**
 * `npm run admin -- <command>`: the operator's command line over the gateway's admin API
 * (README, "Operating"). Prints a table, or the API's JSON with `--json`.
 *
 *   users | user <id> | clients | connections [--status s] | audit [filters] |
 *   stuck-flows [--minutes n] [--status s] | revoke-user <id> | revoke-client <id>
 *
 * The gateway's URL and admin token come from `--url` and `--token`, else `GATEWAY_ADMIN_URL` and
 * `GATEWAY_ADMIN_TOKEN`, else the gateway's own config (public URL, `admin.token`).
 */
import { pathToFileURL } from 'node:url';
import { loadConfig } from '../server/config.js';

/** A parsed command line. */
export interface AdminArgs {
  command: string;
  positional: string[];
  options: Record<string, string>;
  json: boolean;
}

const usage = `usage: npm run admin -- [--url URL] [--token TOKEN] [--json] <command>
  users                        every user with consents or connections
  user <userId>                one user's connections (grants) and consents
  clients                      registered and configured clients
  connections [--status S]     every upstream connection (S: connected, needs_reconnect, expired)
  audit [--user U] [--client C] [--upstream X] [--kind K] [--since T] [--until T] [--limit N] [--cursor C]
  stuck-flows [--minutes N] [--status S]   consent flows still open after N minutes (default 10)
  revoke-user <userId>         tokens, consents and upstream connections of the user, everywhere
  revoke-client <clientId>     every user's tokens and consent for the client`;

/** Splits `argv` into the command, its arguments and `--name value` options. */
export function parseArgs(argv: string[]): AdminArgs {
  const positional: string[] = [];
  const options: Record<string, string> = {};
  let json = false;
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i] ?? '';
    if (arg === '--json') json = true;
    else if (arg.startsWith('--')) {
      const value = argv[i + 1];
      if (value === undefined) throw new Error(`${arg} needs a value`);
      options[arg.slice(2)] = value;
      i += 1;
    } else positional.push(arg);
  }
  const [command = 'help', ...rest] = positional;
  return { command, positional: rest, options, json };
}

/** Shows text from outside (user ids, client names) without letting it steer the terminal. */
export function printable(value: unknown): string {
  if (value === null || value === undefined) return '-';
  const text = Array.isArray(value) ? value.join(',') : String(value);
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Renders rows as an aligned text table with the given columns. */
export function table(rows: Record<string, unknown>[], columns: string[]): string {
  if (rows.length === 0) return '(none)';
  const cells = rows.map((row) => columns.map((column) => printable(row[column])));
  const widths = columns.map((column, i) => Math.max(column.length, ...cells.map((line) => line[i]!.length)));
  const line = (values: string[]) => values.map((value, i) => value.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(columns), ...cells.map(line)].join('\n');
}

interface Target {
  url: string;
  token: string;
}

function target(options: Record<string, string>, env: NodeJS.ProcessEnv): Target {
  let url = options.url ?? env.GATEWAY_ADMIN_URL;
  let token = options.token ?? env.GATEWAY_ADMIN_TOKEN;
  if (!url || !token) {
    const config = loadConfig({ env });
    url ??= config.http.publicUrl;
    token ??= config.operations.adminToken;
  }
  if (!token) throw new Error('no admin token: pass --token, set GATEWAY_ADMIN_TOKEN, or set admin.token in the config');
  return { url: url.replace(/\/+$/, ''), token };
}

const e = encodeURIComponent;

/** The admin API request a command makes: method, path with query. */
export function requestOf(args: AdminArgs): { method: 'GET' | 'POST'; path: string } {
  const one = () => {
    const value = args.positional[0];
    if (!value) throw new Error(`${args.command} needs an id\n${usage}`);
    return value;
  };
  const query = (names: Record<string, string>) => {
    const params = new URLSearchParams();
    for (const [option, name] of Object.entries(names)) if (args.options[option] !== undefined) params.set(name, args.options[option]!);
    const text = params.toString();
    return text ? `?${text}` : '';
  };
  switch (args.command) {
    case 'users':
      return { method: 'GET', path: '/admin/users' };
    case 'user':
      return { method: 'GET', path: `/admin/users/${e(one())}` };
    case 'clients':
      return { method: 'GET', path: '/admin/clients' };
    case 'connections':
      return { method: 'GET', path: `/admin/connections${query({ status: 'status' })}` };
    case 'audit':
      return {
        method: 'GET',
        path: `/admin/audit${query({ user: 'user', client: 'client', upstream: 'upstream', kind: 'kind', since: 'since', until: 'until', limit: 'limit', cursor: 'cursor' })}`,
      };
    case 'stuck-flows':
      return { method: 'GET', path: `/admin/flows/stuck${query({ minutes: 'minutes', status: 'status' })}` };
    case 'revoke-user':
      return { method: 'POST', path: `/admin/users/${e(one())}/revoke` };
    case 'revoke-client':
      return { method: 'POST', path: `/admin/clients/${e(one())}/revoke` };
    default:
      throw new Error(usage);
  }
}

type Body = Record<string, unknown>;
const list = (body: Body, key: string) => (Array.isArray(body[key]) ? (body[key] as Body[]) : []);

/** The table (or tables) a command's answer is shown as. */
export function render(command: string, body: Body): string {
  switch (command) {
    case 'users':
      return table(list(body, 'users'), ['userId', 'clients', 'connections', 'needsReconnect']);
    case 'user':
      return [
        `Connections of ${printable(body.userId)}:`,
        table(list(body, 'connections'), ['upstream', 'status', 'connectedAt', 'lastUsedAt', 'temporalUrl']),
        '',
        'Consents:',
        table(list(body, 'consents'), ['clientId', 'upstreams', 'scopes', 'grantedAt', 'temporalUrl']),
      ].join('\n');
    case 'clients':
      return table(list(body, 'clients'), ['clientId', 'clientName', 'registration', 'users', 'redirectUris']);
    case 'connections':
      return table(list(body, 'connections'), ['userId', 'upstream', 'status', 'updatedAt', 'temporalUrl']);
    case 'audit': {
      const rows = table(list(body, 'entries'), ['id', 'at', 'kind', 'userId', 'clientId', 'upstream', 'outcome', 'actor', 'sourceIp', 'flowId']);
      return body.nextCursor ? `${rows}\nmore: --cursor ${printable(body.nextCursor)}` : rows;
    }
    case 'stuck-flows':
      return `${table(list(body, 'flows'), ['workflowId', 'status', 'userId', 'clientId', 'startedAt', 'temporalUrl'])}\nquery: ${printable(body.query)}`;
    case 'revoke-user':
      return `Revoked ${printable(body.userId)}: clients ${printable(body.revokedClients) || '-'}; upstreams disconnected ${printable(body.disconnectedUpstreams) || '-'}`;
    case 'revoke-client':
      return `Revoked ${printable(body.clientId)} for: ${printable(body.revokedUsers) || '-'}`;
    default:
      return JSON.stringify(body, null, 2);
  }
}

/** Runs one command; returns the exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env, out: (text: string) => void = (text) => process.stdout.write(`${text}\n`)): Promise<number> {
  const args = parseArgs(argv);
  if (args.command === 'help') {
    out(usage);
    return 0;
  }
  const request = requestOf(args);
  const { url, token } = target(args.options, env);
  const response = await fetch(`${url}${request.path}`, { method: request.method, headers: { authorization: `Bearer ${token}`, accept: 'application/json' } }).catch((error: unknown) => {
    throw new Error(`could not reach the gateway at ${url}: ${error instanceof Error ? error.message : String(error)}`);
  });
  const text = await response.text();
  let body: Body;
  try {
    body = JSON.parse(text) as Body;
  } catch {
    throw new Error(`the gateway answered ${response.status} with something other than JSON`);
  }
  if (!response.ok) {
    out(`error ${response.status}: ${printable(body.error)}: ${printable(body.error_description)}`);
    return 1;
  }
  out(args.json ? JSON.stringify(body, null, 2) : render(args.command, body));
  return 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 2;
    },
  );
}
