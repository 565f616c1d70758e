import { ApplicationFailure } from '@temporalio/workflow';

/** What the user is told about a failed activity: its OAuth error code and a sentence. */
export function failureOf(error: unknown): { code: string; message: string } {
  // Activity failures arrive as ActivityFailure with the ApplicationFailure as cause.
  const cause = (error as { cause?: unknown }).cause ?? error;
  if (cause instanceof ApplicationFailure) return { code: cause.type ?? 'server_error', message: cause.message };
  return { code: 'temporarily_unavailable', message: 'the upstream could not be reached; try again' };
}
