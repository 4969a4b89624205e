import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { localClock } from '../../src/flows/risk-decision.ts';

// Rules and limits read the merchant's local hour and weekday (`:hour_of_day:`, daily limit windows). The answer is
// kept for the rest of its minute; these cases cross minutes, days, half-hour offsets and daylight saving changes,
// and ask again in the same minute after asking another zone.
describe('the local clock of a payment', () => {
  const cases: Array<[string, string, number, number]> = [
    // instant (UTC), zone, hour with minutes as a fraction, day of week (0 = Sunday)
    ['2026-03-08T06:59:30Z', 'America/New_York', 1 + 59 / 60, 0],
    ['2026-03-08T07:00:00Z', 'America/New_York', 3, 0], // clocks jump from 02:00 EST to 03:00 EDT
    ['2026-11-01T05:59:59Z', 'America/New_York', 1 + 59 / 60, 0],
    ['2026-11-01T06:00:00Z', 'America/New_York', 1, 0], // 02:00 EDT is 01:00 EST again
    ['2026-11-26T18:29:59Z', 'Asia/Kolkata', 23 + 59 / 60, 4],
    ['2026-11-26T18:30:00Z', 'Asia/Kolkata', 0, 5],
    ['2026-11-26T15:59:00Z', 'Asia/Shanghai', 23 + 59 / 60, 4],
    ['2026-11-26T16:00:00Z', 'Asia/Shanghai', 0, 5],
    ['2026-11-26T16:00:59Z', 'Asia/Shanghai', 0, 5],
    ['2026-11-26T16:01:00Z', 'Asia/Shanghai', 1 / 60, 5],
    ['2026-11-26T16:00:30Z', 'UTC', 16, 4],
    ['2026-11-26T16:00:45Z', 'Asia/Shanghai', 0, 5],
    ['2026-06-30T12:15:00Z', 'Asia/Kathmandu', 18, 2], // +05:45
  ];
  test('hour and weekday are the zone\'s own, minute by minute, asked in any order', () => {
    for (const [instant, zone, hour, dayOfWeek] of cases) {
      const clock = localClock(new Date(instant), zone);
      assert.ok(Math.abs(clock.hour - hour) < 1e-9, `${instant} in ${zone}: hour ${clock.hour}, expected ${hour}`);
      assert.equal(clock.dayOfWeek, dayOfWeek, `${instant} in ${zone}: weekday`);
    }
  });

  test('an answer handed out cannot change the next one', () => {
    const missed = localClock(new Date('2026-11-26T10:00:00Z'), 'Europe/Paris');
    missed.hour = 98;
    const kept = localClock(new Date('2026-11-26T10:00:10Z'), 'Europe/Paris');
    assert.equal(kept.hour, 11);
    kept.hour = 99;
    assert.equal(localClock(new Date('2026-11-26T10:00:20Z'), 'Europe/Paris').hour, 11);
  });
});
