import pino, { type Logger } from 'pino';
import { maskCardNumbers } from '../vault/pan-scanner.ts';

export type { Logger };

/**
 * Paths that must never reach a log line in clear: card data, secrets, credentials. Request bodies are not logged
 * at all; these paths catch objects logged on purpose that might carry them.
 */
export const redactedPaths = [
  'card.number',
  'card.cvc',
  '*.card.number',
  '*.card.cvc',
  'number',
  'cvc',
  'password',
  '*.password',
  'secret',
  '*.secret',
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'headers.cookie',
];

interface LoggedRequest {
  method?: string;
  url?: string;
  host?: string;
  ip?: string;
  socket?: { remotePort?: number };
}

/**
 * Query parameters whose values are card data, whatever the endpoint (`card[number]`, `card%5Bcvc%5D`, `cvv`),
 * or keys: the signature of a return link (`sig`, which leads to a client secret), Alipay's `sign`, and client secrets
 * (`client_secret`, `payment_intent_client_secret`: one opens a PaymentIntent's hosted page); or personal data: a
 * search's `query` (`email:'ada@example.com'`), the `email` or `phone` a list is filtered by, and the recipient (`to`)
 * the sandbox outbox is filtered by.
 */
const redactedParameter = /^([^=]*(number|cvc|cvv|client_secret)[^=]*|sig|sign|query|email|phone|to)=/i;

/**
 * The same secrets inside a URL given as a parameter's value, percent-encoded (Coffer's return link, with its `sig`,
 * in the `return_url` of a provider's gateway request): `%3Fsig%3D…`, `%26payment_intent_client_secret%3D…`.
 */
const secretInEncodedUrl = /((?:%3F|%26)(?:sig|sign|[a-z_]*client_secret)%3D)(?:[0-9A-Za-z_.~-]|%2[BbFf]|%3[Dd])+/gi;

/**
 * A hosted page's session id is the page's bearer (it pays, shows the receipt email, opens support cases): only
 * its first six characters are logged, enough to find it among a merchant's sessions.
 */
const pageSessionId = /(cs_(?:test|live)_[0-9A-Za-z]{6})[0-9A-Za-z]{18}(?![0-9A-Za-z])/g;

/** A recovery address's token (decision 0064) is a bearer too: only its first six characters are logged. */
const recoveryToken = /(\/pay\/recover\/[0-9A-Za-z]{6})[0-9A-Za-z]{26}(?![0-9A-Za-z])/g;

/** A hosted page's session id as log lines show it (see `pageSessionId`). */
export function loggedSessionId(id: string): string {
  return id.replace(pageSessionId, '$1…');
}

/** API keys and webhook signing secrets, wherever a misconfigured client puts them in a URL (`?key=sk_live_…`). */
const secretInUrl = /\b((?:sk|rk|pk)(?:_|%5F)(?:test|live)(?:_|%5F)|whsec(?:_|%5F))[0-9A-Za-z+=%]+/gi;

/**
 * The URL as a log line shows it. A caller can write card data, keys or personal data into a path or a query
 * string: security codes, numbers, secrets and personal data given as parameters are replaced, keys and signing
 * secrets anywhere are cut to their prefix, hosted pages' session ids to their first characters, and any other
 * card number is masked.
 */
export function loggedUrl(url: string): string {
  const queryAt = url.indexOf('?');
  const path = queryAt < 0 ? url : url.slice(0, queryAt);
  const query = queryAt < 0 ? '' : `?${url.slice(queryAt + 1).split('&')
    .map((pair) => (redactedParameter.test(pair) ? `${pair.slice(0, pair.indexOf('='))}=[redacted]` : pair)).join('&')}`;
  return maskCardNumbers(`${path}${query}`.replace(secretInUrl, '$1[redacted]').replace(secretInEncodedUrl, '$1[redacted]').replace(pageSessionId, '$1…').replace(recoveryToken, '$1…'));
}

/** A request as its log lines show it. */
function requestSummary(request: LoggedRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: request.url === undefined ? undefined : loggedUrl(request.url),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}

/**
 * Errors as log lines show them: pino's usual fields, without the values a database driver attaches to an error
 * (the statement's parameters, the failing row), which can hold client secrets, names and addresses.
 */
function errorSummary(error: Error): Record<string, unknown> {
  const serialized: Record<string, unknown> = { ...pino.stdSerializers.err(error) };
  // `detail` too: a constraint violation's "Failing row contains (…)" spells out the whole row.
  for (const field of ['params', 'parameters', 'values', 'detail']) delete serialized[field];
  return serialized;
}

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      redact: { paths: redactedPaths, censor: '[redacted]' },
      serializers: { req: requestSummary, err: errorSummary },
      // Milliseconds to a tenth: the fifteen-digit fractions the timer gives say nothing and read like card numbers.
      formatters: {
        log: (object) => (typeof object.responseTime === 'number' ? { ...object, responseTime: Math.round(object.responseTime * 10) / 10 } : object),
      },
      base: { service: 'coffer' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
