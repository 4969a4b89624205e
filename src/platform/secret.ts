import { timingSafeEqual } from 'node:crypto';
import { inspect } from 'node:util';

/**
 * A secret value (key, password, card number) that cannot be printed by accident: string conversion, JSON and
 * `util.inspect` all show `[redacted]`. Reading the value takes an explicit `reveal()`.
 */
export class Secret<T = string> {
  readonly #value: T;

  constructor(value: T) {
    this.#value = value;
  }

  reveal(): T {
    return this.#value;
  }

  toString(): string {
    return '[redacted]';
  }

  toJSON(): string {
    return '[redacted]';
  }

  [inspect.custom](): string {
    return 'Secret([redacted])';
  }
}

/** Whether a given token, code or secret equals the expected one, compared in constant time. */
export function sameSecretText(given: string, expected: string): boolean {
  const left = Buffer.from(given);
  const right = Buffer.from(expected);
  return left.length === right.length && timingSafeEqual(left, right);
}
