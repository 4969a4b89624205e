import type { Services } from '../flows/context.ts';

/**
 * Handles a job's claimed rows one by one, each on its own: a row whose handling fails is logged, with its id under
 * `what`, and left to its lease or in-flight mark (taken up again later); the rows after it are still handled, and
 * so are the jobs after this one. Returns how many rows were claimed, as a job's batch does.
 */
export async function handleEach<T extends { id: string }>(
  services: Services, rows: readonly T[], log: { what: string; failed: string }, handle: (row: T) => Promise<void>,
): Promise<number> {
  for (const row of rows) {
    try {
      await handle(row);
    } catch (error) {
      services.logger.error({ err: error, [log.what]: row.id }, log.failed);
    }
  }
  return rows.length;
}
