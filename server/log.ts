/** Log levels, most verbose first. */
export const logLevels = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof logLevels)[number];

/** A small structured logger: one line per event, `key=value` fields. Never pass secrets to it. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

function format(value: unknown): string {
  if (value instanceof Error) return JSON.stringify(value.message);
  if (typeof value === 'string') return /[\s"=]/.test(value) ? JSON.stringify(value) : value;
  return JSON.stringify(value);
}

/** Creates a logger writing to stderr at `level` and above. */
export function createLogger(level: LogLevel = 'info', write: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): Logger {
  const threshold = logLevels.indexOf(level);
  const emit = (at: LogLevel) => (message: string, fields: Record<string, unknown> = {}) => {
    if (logLevels.indexOf(at) < threshold) return;
    const parts = [new Date().toISOString(), at.toUpperCase().padEnd(5), message];
    for (const [key, value] of Object.entries(fields)) if (value !== undefined) parts.push(`${key}=${format(value)}`);
    write(parts.join(' '));
  };
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}
