/**
 * Named places where a test can make Coffer crash (exit at once, as `kill -9` would) to prove that recovery
 * works. They are inert unless `COFFER_FAULT_POINT` names one, which only test mode honours (`coffer doctor`
 * refuses it in live mode).
 */
export const faultPointNames = [
  'confirm.after_attempt_persisted',
  'confirm.after_provider_call',
  'capture.after_provider_call',
  'increment.after_provider_call',
  'request.before_response',
] as const;
export type FaultPointName = (typeof faultPointNames)[number];

export interface FaultPoints {
  reach(name: FaultPointName): void;
}

export const noFaults: FaultPoints = { reach: () => undefined };

export function faultPointsFromEnv(env: NodeJS.ProcessEnv): FaultPoints {
  const armed = env.COFFER_FAULT_POINT;
  if (armed === undefined || armed === '') return noFaults;
  if (!(faultPointNames as readonly string[]).includes(armed)) {
    throw new Error(`COFFER_FAULT_POINT must be one of ${faultPointNames.join(', ')}`);
  }
  return {
    reach: (name) => {
      if (name === armed) process.kill(process.pid, 'SIGKILL');
    },
  };
}
