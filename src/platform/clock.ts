/** Time is passed in, never read directly by the domain, so that tests can move it. */
export interface Clock {
  nowMs(): number;
}

export const systemClock: Clock = {
  nowMs: () => Date.now(),
};

export function unixSeconds(ms: number): number {
  return Math.floor(ms / 1000);
}
