/**
 * A failed assertion is a bug in Coffer, never bad input: it stops the current operation (rolling back any open
 * transaction) and, in a running server, the process. Operating errors (bad input, declines, providers down) are
 * `CofferError` values instead.
 */
export class AssertionFailure extends Error {
  override readonly name = 'AssertionFailure';
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionFailure(message);
}

/** Makes a `switch` over a union exhaustive: adding a member without handling it fails to compile. */
export function assertNever(value: never, what: string): never {
  throw new AssertionFailure(`unexpected ${what}: ${String(value)}`);
}
