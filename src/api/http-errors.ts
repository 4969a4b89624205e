import { CofferError } from '../domain/errors.ts';
import { AssertionFailure } from '../platform/assert.ts';
import { schemaErrorToCofferError, type SchemaError } from './validation-errors.ts';

interface FastifyLikeError {
  code?: unknown;
  statusCode?: unknown;
  validation?: unknown;
  message?: unknown;
}

const connectionErrorCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', '57P01', '57P03', '08006', '08001', '53300']);

/**
 * The one place where anything thrown while serving a request becomes an HTTP answer. Operating errors keep their
 * code; framework errors (body too large, bad JSON, schema violations) become the matching operating error;
 * anything else is a bug or an outage, answered without internals.
 */
/** `fatal`: an assertion failed (a bug), the process stops; `error`: unexpected, logged with its stack. */
export type Severity = 'none' | 'error' | 'fatal';

/**
 * `bodyLimit`: the largest body the endpoint takes, named in the refusal of a larger one when known; `bodyTypes`:
 * the content types its listener parses (the staff API takes JSON only), named in the refusal of another.
 */
export function toCofferError(error: unknown, bodyLimit?: number, bodyTypes = 'application/x-www-form-urlencoded or application/json'): { error: CofferError; severity: Severity } {
  if (error instanceof CofferError) return { error, severity: 'none' };
  if (error instanceof AssertionFailure) {
    return { error: new CofferError('api_error', 'An internal error occurred. It has been logged.'), severity: 'fatal' };
  }
  const e = (error ?? {}) as FastifyLikeError;
  if (Array.isArray(e.validation)) return { error: schemaErrorToCofferError(e.validation as SchemaError[]), severity: 'none' };
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return {
        error: new CofferError('request_body_too_large', bodyLimit === undefined ? 'The request body is larger than this endpoint takes.' : `The request body is larger than ${bodyLimit} bytes.`),
        severity: 'none',
      };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return {
        error: new CofferError(
          'content_type_unsupported',
          `Send the request body as ${bodyTypes}.`,
        ),
        severity: 'none',
      };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { error: new CofferError('request_body_invalid', 'The request body could not be parsed.'), severity: 'none' };
    default:
      break;
  }
  if (error instanceof SyntaxError || e.statusCode === 400) {
    return { error: new CofferError('request_body_invalid', 'The request body could not be parsed.'), severity: 'none' };
  }
  if (typeof e.code === 'string' && connectionErrorCodes.has(e.code)) {
    return {
      error: new CofferError('service_unavailable', 'The database is unavailable. Try again shortly.', { retryAfterSeconds: 1 }),
      severity: 'none',
    };
  }
  if (typeof e.message === 'string' && /timeout exceeded when trying to connect|Connection terminated/.test(e.message)) {
    return {
      error: new CofferError('service_unavailable', 'The database is busy or unavailable. Try again shortly.', { retryAfterSeconds: 1 }),
      severity: 'none',
    };
  }
  return { error: new CofferError('api_error', 'An internal error occurred. It has been logged.'), severity: 'error' };
}
