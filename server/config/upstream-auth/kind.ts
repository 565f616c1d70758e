/** Reads typed values out of a parsed config mapping; every reader names `key` in its error. */
export interface ConfigReader {
  record(value: unknown, key: string): Record<string, unknown>;
  string(value: unknown, key: string): string | undefined;
  url(value: string | undefined, key: string): string;
  oneOf<T extends string>(value: string | undefined, allowed: readonly T[], key: string): T | undefined;
  /** A `ConfigError` with `message`, to throw. */
  error(message: string): Error;
}

/**
 * One way the gateway authenticates at an upstream (`auth.type` in the config): how its settings
 * are read, and whether each user must connect an account of their own there first.
 */
export interface UpstreamAuthKind<Settings extends { type: string }> {
  type: Settings['type'];
  /** True when each user connects an account at the upstream (a grant of their own, stored sealed). */
  perUserConnection: boolean;
  /** Reads the settings of `auth` (a mapping whose `type` is this kind's) at config key `key`. */
  parse(entry: Record<string, unknown>, key: string, read: ConfigReader): Settings;
}
