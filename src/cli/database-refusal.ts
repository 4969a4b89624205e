/**
 * Why a command other than `start` and `migrate` did not use the database, having changed nothing. Exit 2: no
 * Coffer database where the configuration points, or one that is not migrated to this version, which only those
 * two create or change (a mistyped COFFER_HOME or DATABASE_URL must not become a new, empty installation that
 * every check passes). Exit 3: it is there but cannot be opened or reached (held by a running Coffer, server
 * down, no such database or role), which is no verdict on what it holds.
 */
export class DatabaseRefusal extends Error {
  /** `reason`: what went wrong, naming the database, without what the command did about it. */
  constructor(message: string, readonly exitCode: 2 | 3, readonly reason: string) {
    super(message);
    this.name = 'DatabaseRefusal';
  }
}

/** The exit codes above, as each command's usage states them. */
export const databaseExitCodes = `2 no Coffer database there, or not migrated to this version (nothing is created or changed: run
  coffer migrate, or coffer start); 3 the database cannot be opened or reached`;
