import { countStuckWalletPayments } from '../jobs/sync-wallet-payments.ts';
import { countLateWalletPayments } from '../flows/wallet-late-payments.ts';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import cookie from '@fastify/cookie';
import helmet from '@fastify/helmet';
import { CofferError } from '../domain/errors.ts';
import type { Services } from '../flows/context.ts';
import { roleAllows, type StaffPermission } from '../identity/roles.ts';
import { csrfTokenMatches, recentlyAuthenticated, resolveSession, staffAudit, type SignedIn, type StaffOrigin } from '../identity/staff.ts';
import { limits } from '../limits.ts';
import { randomIdCharacters } from '../platform/random.ts';
import type { Secret } from '../platform/secret.ts';
import { toCofferError } from './http-errors.ts';
import { sendError } from './public-server.ts';
import { registerRateLimits, type RateLimitSettings } from './rate-limits.ts';
import { registerStaffRoutes } from './staff-routes.ts';
import { registerStaffPages } from './staff-pages.ts';
import { lazyValidatorFactory } from './validator-compiler.ts';

/**
 * What a staff route needs: nothing (`public`: sign-in, enrollment), a session waiting for its second factor
 * (`mfa_pending`), any signed-in staff member (`signed_in`), or a permission from the role table.
 */
export type StaffAccess = 'public' | 'mfa_pending' | 'signed_in' | StaffPermission;

declare module 'fastify' {
  interface FastifyRequest {
    staff: SignedIn | null;
  }
  interface FastifyContextConfig {
    /** Every route of the internal listener declares who may call it; one that does not stops Coffer starting. */
    staffAccess?: StaffAccess;
    /** The action needs the password and a code given in the last 5 minutes. */
    reauthenticate?: boolean;
  }
}

export const staffSessionCookie = '__Host-coffer_staff';
export const csrfHeader = 'x-csrf-token';

export interface InternalServerOptions {
  /** With `clientCa`, every connection must present a client certificate issued by it (mutual TLS). */
  https: { key: string; cert: string; ciphers: string; clientCa?: string | undefined } | null;
  rateLimits: RateLimitSettings;
  /** Seals staff members' TOTP secrets. */
  staffSecretKey: Secret<Buffer>;
  /** Refunds above this amount (minor units) need a second person's approval. */
  fourEyesRefundAbove: number;
  /** The origin staff browsers see, for passkeys (WebAuthn); by default https://localhost:<port>. */
  staffOrigin?: string | undefined;
  onFatal: (error: unknown) => void;
}

export function staffOrigin(request: FastifyRequest): StaffOrigin {
  const agent = request.headers['user-agent'];
  return { requestId: request.id, address: request.ip, userAgent: typeof agent === 'string' ? agent : null };
}

export interface StaffRoute {
  method: string;
  url: string;
  access: StaffAccess;
  reauthenticate: boolean;
}

const staffRoutes = new WeakMap<FastifyInstance, StaffRoute[]>();

/** The staff API's routes as registered, with who may call each (for the test that walks every route with every role). */
export function staffRoutesOf(app: FastifyInstance): readonly StaffRoute[] {
  return staffRoutes.get(app) ?? [];
}

function isStateChanging(method: string): boolean {
  return method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS';
}

/**
 * The checks every staff request passes, in this order: rate limit (registered before), session, CSRF token on
 * anything that changes state, the route's permission (default deny), and a recent re-authentication where the
 * route asks for one. Refusals of a signed-in person are audited.
 */
async function guard(services: Services, options: InternalServerOptions, request: FastifyRequest): Promise<void> {
  const access = request.routeOptions.config.staffAccess;
  if (access === undefined || access === 'public') return;
  const now = new Date(services.clock.nowMs());
  const signedIn = await resolveSession(services.db, request.cookies[staffSessionCookie], access === 'mfa_pending' ? 'mfa_pending' : 'active', now);
  request.staff = signedIn;
  if (access === 'mfa_pending') return;
  const deny = async (reason: string, error: CofferError): Promise<never> => {
    await staffAudit(services.db, staffOrigin(request), now, {
      actorId: signedIn.user.id, action: 'staff.access_denied', outcome: 'failure', objectType: 'route', objectId: `${request.method} ${request.routeOptions.url ?? ''}`,
      details: { reason, role: signedIn.user.role },
    });
    throw error;
  };
  if (isStateChanging(request.method)) {
    const header = request.headers[csrfHeader];
    if (!csrfTokenMatches(options.staffSecretKey, signedIn.session, typeof header === 'string' ? header : undefined)) {
      await deny('csrf', new CofferError('csrf_token_invalid', `This request changes state and needs the session's CSRF token in the ${csrfHeader} header.`));
    }
  }
  if (access !== 'signed_in' && !roleAllows(signedIn.user.role, access)) {
    await deny('permission', new CofferError('insufficient_permissions', `Your role (${signedIn.user.role}) does not have the permission ${access} that this action needs.`));
  }
  if (request.routeOptions.config.reauthenticate === true && !recentlyAuthenticated(signedIn.session, now)) {
    throw new CofferError('reauthentication_required', 'This action needs your password and a code again: POST /staff/v1/session/reauthenticate, then retry.');
  }
}

/** TLS 1.2 and 1.3 in the server's cipher order; with a client CA, a handshake without its certificate fails. */
function internalTls(https: NonNullable<InternalServerOptions['https']>) {
  const { clientCa, ...material } = https;
  return {
    ...material, minVersion: 'TLSv1.2' as const, honorCipherOrder: true,
    ...(clientCa === undefined ? {} : { ca: clientCa, requestCert: true, rejectUnauthorized: true }),
  };
}

/** The internal listener: the staff API (and, later, the console), bound to loopback unless configured. */
export async function buildInternalServer(services: Services, options: InternalServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    ...(options.https === null ? {} : { https: internalTls(options.https) }),
    loggerInstance: services.logger.child({ listener: 'internal' }),
    bodyLimit: limits.staffRequestBodyBytesMax,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    requestIdHeader: false,
    genReqId: () => `req_${randomIdCharacters(14)}`,
    routerOptions: { maxParamLength: limits.pathParamLengthMax },
    ajv: { customOptions: { coerceTypes: 'array', removeAdditional: false, useDefaults: false, allErrors: true, verbose: true } },
    schemaController: { compilersFactory: { buildValidator: lazyValidatorFactory } },
    return503OnClosing: true,
  }) as unknown as FastifyInstance;
  app.decorateRequest('staff', null);
  await app.register(helmet, { hsts: { maxAge: 63072000, includeSubDomains: true }, contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } } });
  await app.register(cookie);
  app.addHook('onRequest', async (request, reply) => {
    reply.header('Request-Id', request.id);
    reply.header('Cache-Control', 'no-store');
  });
  // Before the session check, so that guessing passwords or session cookies is limited too.
  await registerRateLimits(app, options.rateLimits, services.logger);
  app.addHook('onRequest', async (request) => guard(services, options, request));
  // A route that takes no parameters in its body refuses any, as the others refuse those they do not know.
  app.addHook('preValidation', async (request) => {
    const schema = request.routeOptions.schema as { body?: unknown } | undefined;
    if (schema?.body !== undefined || request.body === undefined || request.body === null) return;
    const names = typeof request.body === 'object' ? Object.keys(request.body) : [''];
    if (names.length === 0) return;
    const [first = ''] = names;
    throw new CofferError('parameter_unknown', first === '' ? 'This request takes no body.' : `Received unknown parameter: ${first} (this request takes no body parameters).`,
      first === '' ? {} : { param: first });
  });
  app.setErrorHandler(async (error, request, reply) => {
    const { error: cofferError, severity } = toCofferError(error, limits.staffRequestBodyBytesMax, 'application/json');
    if (severity === 'fatal') {
      request.log.fatal({ err: error }, 'assertion failed');
      reply.raw.once('finish', () => options.onFatal(error));
    } else if (severity === 'error') {
      request.log.error({ err: error }, 'unexpected error');
    }
    return sendError(reply, request, cofferError);
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, request, new CofferError('url_unknown', `Unrecognized request URL (${request.method}: ${request.url.split('?')[0]}).`)));
  app.get('/health', { config: { staffAccess: 'public' } }, async () => ({ status: 'ok' }));
  // Prometheus text format, for alerts: counts only, nothing about any payment or merchant.
  app.get('/metrics', { config: { staffAccess: 'public' } }, async (_request, reply) => {
    const stuck = await countStuckWalletPayments(services.db, services.clock.nowMs());
    const late = await countLateWalletPayments(services.db);
    return reply.type('text/plain; version=0.0.4').send([
      '# HELP coffer_wallet_payments_stuck Alipay and WeChat Pay payments still unresolved well past the shopper\'s time to pay.',
      '# TYPE coffer_wallet_payments_stuck gauge',
      `coffer_wallet_payments_stuck ${stuck}`,
      '# HELP coffer_wallet_late_payments Wallet payments made after their attempt was recorded as failed, by the state of their refund to the shopper (unanswered: trades the provider has not said whether were paid).',
      '# TYPE coffer_wallet_late_payments gauge',
      `coffer_wallet_late_payments{status="refunding"} ${late.refunding}`,
      `coffer_wallet_late_payments{status="refund_failed"} ${late.refund_failed}`,
      `coffer_wallet_late_payments{status="unanswered"} ${late.unanswered}`,
      '',
    ].join('\n'));
  });
  const routes: StaffRoute[] = [];
  staffRoutes.set(app, routes);
  app.addHook('onRoute', (route) => {
    const access = route.config?.staffAccess;
    if (access === undefined) throw new Error(`internal route ${String(route.method)} ${route.url} declares no staffAccess: every staff route says who may call it`);
    for (const method of [route.method].flat()) {
      if (method !== 'HEAD') routes.push({ method, url: route.url, access, reauthenticate: route.config?.reauthenticate === true });
    }
  });
  registerStaffRoutes(app, services, options);
  registerStaffPages(app);
  return app;
}
