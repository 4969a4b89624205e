/**
 * Some writes need not wait for their own WAL flush because a durable commit that depends on them always
 * follows (the idempotency claim before a request's effects; the acquirer sandbox's record before the outcome
 * Coffer records): PostgreSQL flushes WAL in order, so the later flush makes them durable too, and losing them
 * in a crash before it loses nothing that mattered. On PostgreSQL such writes commit asynchronously, which
 * halves the flushes per payment. The embedded database has no background WAL writer, so there every commit
 * stays synchronous.
 */
export type CommitDurability = 'flush_every_commit' | 'flush_with_dependents';

export function commitMode(durability: CommitDurability): 'on' | 'off' {
  return durability === 'flush_with_dependents' ? 'off' : 'on';
}
