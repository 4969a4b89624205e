import { hash, verify } from '@node-rs/argon2';
import { dictionary } from '@zxcvbn-ts/language-common';
import { CofferError } from '../domain/errors.ts';
import { limits } from '../limits.ts';

/**
 * Staff passwords: argon2id (the library's defaults, m=19456 KiB, t=2, p=1: OWASP's recommended floor), at least
 * 12 characters, refused when common, and not one of the user's last four.
 */
let common: Set<string> | undefined;

function commonPasswords(): Set<string> {
  common ??= new Set(dictionary['passwords-common'].map((word) => word.toLowerCase()));
  return common;
}

/**
 * Why a password is refused, or undefined. Besides the list itself, the usual disguises of a listed password are
 * seen through: case, digits and symbols added before or after ("Password2024!"), and repetition ("qwertyqwerty").
 */
export function passwordWeakness(password: string, email: string): string | undefined {
  const length = [...password].length;
  if (length < limits.staffPasswordLengthMin) return `Passwords must be at least ${limits.staffPasswordLengthMin} characters long.`;
  if (length > limits.staffPasswordLengthMax) return `Passwords must be at most ${limits.staffPasswordLengthMax} characters long.`;
  const lower = password.toLowerCase();
  const list = commonPasswords();
  const core = lower.replace(/^[^a-z]+|[^a-z]+$/g, '');
  const repeated = /^(.+?)\1+$/.exec(lower)?.[1];
  if (list.has(lower) || (core.length > 0 && list.has(core)) || (repeated !== undefined && (repeated.length < 4 || list.has(repeated)))) {
    return 'This password is one of the most common passwords (or a simple variation of one); choose another.';
  }
  if (new Set(lower).size < 5) return 'This password repeats too few different characters; choose another.';
  const local = email.toLowerCase().split('@')[0] ?? '';
  if (local.length >= 4 && lower.includes(local)) return 'The password must not contain your email address.';
  return undefined;
}

/** `param`: the request's name for the password, which the refusal names. */
export function checkPasswordPolicy(password: string, email: string, param = 'password'): void {
  const weakness = passwordWeakness(password, email);
  if (weakness !== undefined) throw new CofferError('password_too_weak', weakness, { param });
}

export function hashPassword(password: string): Promise<string> {
  return hash(password);
}

export async function passwordMatches(passwordHash: string, password: string): Promise<boolean> {
  try {
    return await verify(passwordHash, password);
  } catch {
    return false;
  }
}

let decoy: Promise<string> | undefined;

/**
 * A hash to verify against when there is no user with the given email (or no password yet), so that the answer
 * takes as long as for a real account: the response time does not tell whether an account exists.
 */
export function decoyHash(): Promise<string> {
  decoy ??= hash('not a password of anyone: a decoy for timing');
  return decoy;
}
