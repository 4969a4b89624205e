import { generateSecret, generateURI, verify as verifyTotp } from 'otplib';
import { limits } from '../limits.ts';

/** TOTP (RFC 6238): SHA-1, 6 digits, 30-second steps, as every authenticator app expects. */
export function newTotpSecret(): string {
  return generateSecret({ length: 20 });
}

export function totpUri(secret: string, email: string): string {
  return generateURI({ issuer: 'Coffer', label: email, secret });
}

/**
 * The time step a code belongs to when it is valid now (give or take one step), and newer than `lastStep`; else
 * undefined. Storing the returned step as the new `lastStep` is what makes a code work once.
 */
export async function acceptedTotpStep(secret: string, code: string, nowMs: number, lastStep: bigint | null): Promise<number | undefined> {
  if (!/^\d{6}$/.test(code)) return undefined;
  let result: Awaited<ReturnType<typeof verifyTotp>>;
  try {
    result = await verifyTotp({
    secret,
    token: code,
    epoch: Math.floor(nowMs / 1000),
    epochTolerance: limits.totpToleranceSeconds,
    ...(lastStep === null ? {} : { afterTimeStep: Number(lastStep) }),
    });
  } catch {
    return undefined;
  }
  return result.valid && 'timeStep' in result ? result.timeStep : undefined;
}
