import type https from 'node:https';
import { generate } from 'otplib';
import { inviteStaffUser } from '../../src/identity/staff.ts';
import type { StaffRole } from '../../src/store/database.ts';
import type { TestClock } from './clock.ts';
import { rawRequest, type RawResponse, type TestServer } from './server.ts';

/** A staff member's browser on the internal listener: one session cookie, the CSRF token, JSON requests. */
export class StaffClient {
  cookie: string | undefined;
  lastSetCookie: string | undefined;
  csrf: string | undefined;
  totpSecret = '';
  email = '';
  password = '';
  userId = '';
  recoveryCodes: string[] = [];

  constructor(private readonly listener: { port: number; agent: https.Agent }, private readonly clock: TestClock) {}

  async request(method: string, path: string, body?: unknown, options: { csrf?: string | null } = {}): Promise<RawResponse> {
    return this.send(method, path, body === undefined ? undefined : { body: JSON.stringify(body), contentType: 'application/json' }, options);
  }

  /** A body as given, of any content type (what a client that does not speak JSON sends). */
  async requestRaw(method: string, path: string, body: string, contentType: string): Promise<RawResponse> {
    return this.send(method, path, { body, contentType }, {});
  }

  private async send(method: string, path: string, payload: { body: string; contentType: string } | undefined, options: { csrf?: string | null }): Promise<RawResponse> {
    const headers: Record<string, string> = {};
    if (this.cookie !== undefined) headers.cookie = this.cookie;
    const csrf = options.csrf === undefined ? this.csrf : options.csrf;
    if (csrf !== null && csrf !== undefined) headers['x-csrf-token'] = csrf;
    const response = await rawRequest(this.listener, method, path, { headers, ...(payload ?? {}) });
    const setCookie = response.headers['set-cookie']?.[0];
    if (setCookie !== undefined) {
      this.lastSetCookie = setCookie;
      const pair = setCookie.split(';')[0] ?? '';
      this.cookie = pair.endsWith('=') ? undefined : pair;
    }
    return response;
  }

  /** The current TOTP code; the clock moves on a step first, so that every code is new (a code works once). */
  async nextCode(): Promise<string> {
    this.clock.offsetMs += 30_000;
    return generate({ secret: this.totpSecret, epoch: Math.floor(this.clock.nowMs() / 1000) });
  }

  async signIn(password = this.password): Promise<RawResponse> {
    const first = await this.request('POST', '/staff/v1/session', { email: this.email, password });
    if (first.status !== 200) return first;
    const second = await this.request('POST', '/staff/v1/session/mfa', { code: await this.nextCode() });
    if (second.status === 200) this.csrf = second.json.csrf_token as string;
    return second;
  }

  async reauthenticate(): Promise<RawResponse> {
    return this.request('POST', '/staff/v1/session/reauthenticate', { password: this.password, code: await this.nextCode() });
  }
}

/** The internal listener of a test server. */
export function internalListener(server: TestServer): { port: number; agent: https.Agent } {
  return { port: server.coffer.internalPort, agent: server.agent };
}

export const strongPassword = (seed: string) => `violet-${seed}-harbor-lantern-91`;

/** A staff member invited in the database and enrolled through the staff API (start, then complete with a code). */
export async function enrolledStaff(server: TestServer, clock: TestClock, role: StaffRole, name: string = role): Promise<StaffClient> {
  const email = `${name}.${Math.random().toString(36).slice(2, 8)}@staff.example`;
  const invited = await server.database.db.transaction().execute((tx) => inviteStaffUser(tx, { email, name, role, createdBy: 'test' }, new Date(clock.nowMs())));
  const client = new StaffClient(internalListener(server), clock);
  await enrollWithToken(client, invited.enrollmentToken.reveal(), strongPassword(name));
  return client;
}

export async function enrollWithToken(client: StaffClient, token: string, password: string, enrollmentCode?: string): Promise<void> {
  const code = enrollmentCode === undefined ? {} : { enrollment_code: enrollmentCode };
  const started = await client.request('POST', '/staff/v1/enrollment/start', { token, ...code });
  if (started.status !== 200) throw new Error(`enrollment start: ${started.body}`);
  client.totpSecret = started.json.totp_secret as string;
  client.email = started.json.email as string;
  const done = await client.request('POST', '/staff/v1/enrollment/complete', { token, ...code, password, code: await client.nextCode() });
  if (done.status !== 200) throw new Error(`enrollment complete: ${done.body}`);
  client.password = password;
  client.userId = done.json.user as string;
  client.recoveryCodes = done.json.recovery_codes as string[];
}

export async function signedInStaff(server: TestServer, clock: TestClock, role: StaffRole, name: string = role): Promise<StaffClient> {
  const client = await enrolledStaff(server, clock, role, name);
  const signed = await client.signIn();
  if (signed.status !== 200) throw new Error(`sign-in: ${signed.body}`);
  return client;
}
