import type { Clock } from '../../src/platform/clock.ts';

/** Wall time that a test moves forward (timeouts, expiries, lockouts, TOTP steps) by adding to `offsetMs`. */
export class TestClock implements Clock {
  offsetMs = 0;
  nowMs(): number {
    return Date.now() + this.offsetMs;
  }
}
