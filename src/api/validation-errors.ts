import { CofferError } from '../domain/errors.ts';

/** The parts of an Ajv error this mapping reads (Fastify passes Ajv's errors with `verbose` on). */
export interface SchemaError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  data?: unknown;
  message?: string | undefined;
}

/** `/payment_method_options/card/foo` becomes `payment_method_options[card][foo]`, as Stripe names parameters. */
export function parameterName(instancePath: string, child?: string): string {
  const parts = instancePath.split('/').filter((part) => part !== '').map((part) => part.replaceAll('~1', '/').replaceAll('~0', '~'));
  if (child !== undefined) parts.push(child);
  const [head, ...rest] = parts;
  if (head === undefined) return '';
  return head + rest.map((part) => `[${part}]`).join('');
}

function describe(value: unknown): string {
  if (typeof value === 'string') return value;
  return JSON.stringify(value) ?? String(value);
}

const depth = (error: SchemaError) => error.instancePath.split('/').length;
const isTypeCheck = (error: SchemaError) => error.keyword === 'type' || error.keyword === 'const';

/**
 * An `anyOf` failure (`''` or an object, say) lists every branch's complaint. The useful one is the deepest; at
 * equal depth, a constraint beats a type mismatch, and a type mismatch that is not "must be a string" (the `''`
 * branch) beats one that is.
 */
function mostSpecific(errors: readonly SchemaError[]): SchemaError | undefined {
  const candidates = errors.filter((error) => error.keyword !== 'anyOf');
  const rank = (error: SchemaError) => [
    -depth(error),
    isTypeCheck(error) ? 1 : 0,
    error.keyword === 'const' || error.params.type === 'string' ? 1 : 0,
  ];
  return [...candidates].sort((a, b) => {
    const [ra, rb] = [rank(a), rank(b)];
    for (let i = 0; i < ra.length; i += 1) if (ra[i] !== rb[i]) return (ra[i] ?? 0) - (rb[i] ?? 0);
    return 0;
  })[0] ?? errors[0];
}

/** Turns the first schema violation into Stripe's error for it, naming the parameter. */
export function schemaErrorToCofferError(errors: readonly SchemaError[]): CofferError {
  const error = mostSpecific(errors);
  if (error === undefined) return new CofferError('parameter_invalid', 'Invalid request.');
  const param = parameterName(error.instancePath);
  const value = error.data;
  switch (error.keyword) {
    case 'additionalProperties': {
      const unknown = parameterName(error.instancePath, String(error.params.additionalProperty));
      return new CofferError('parameter_unknown', `Received unknown parameter: ${unknown}`, { param: unknown });
    }
    case 'required': {
      const missing = parameterName(error.instancePath, String(error.params.missingProperty));
      return new CofferError('parameter_missing', `Missing required param: ${missing}.`, { param: missing });
    }
    case 'type':
    case 'const': {
      if (value === '') {
        return new CofferError(
          'parameter_invalid_empty',
          `You passed an empty string for '${param}'. We assume empty values are an attempt to unset a parameter; ` +
            `however '${param}' cannot be unset. You should remove '${param}' from your request or supply a non-empty value.`,
          { param },
        );
      }
      const expected = String(error.params.type ?? 'valid');
      if (expected === 'integer') {
        return new CofferError('parameter_invalid_integer', `Invalid integer: ${describe(value)}`, { param });
      }
      return new CofferError('parameter_invalid', `Invalid ${expected}: ${describe(value)} (parameter ${param})`, { param });
    }
    case 'enum':
      return new CofferError(
        'parameter_invalid',
        `Invalid ${param}: must be one of ${(error.params.allowedValues as unknown[]).join(', ')}`,
        { param },
      );
    case 'maxLength':
      return new CofferError('parameter_invalid', `Invalid ${param}: must be at most ${String(error.params.limit)} characters`, { param });
    case 'minLength':
      return new CofferError('parameter_invalid', `Invalid ${param}: must be at least ${String(error.params.limit)} characters`, { param });
    case 'maxItems':
      return new CofferError('parameter_invalid', `Invalid ${param}: must have at most ${String(error.params.limit)} items`, { param });
    case 'maxProperties':
      return new CofferError('parameter_invalid', `Invalid ${param}: must have at most ${String(error.params.limit)} keys`, { param });
    case 'propertyNames': {
      return new CofferError('parameter_invalid', `Invalid ${param}: a key is empty or longer than allowed`, { param });
    }
    case 'minimum':
    case 'maximum':
      return new CofferError(
        'parameter_invalid_integer',
        `Invalid ${param}: must be ${error.keyword === 'minimum' ? 'at least' : 'at most'} ${String(error.params.limit)}`,
        { param },
      );
    default:
      return new CofferError('parameter_invalid', `Invalid ${param}: ${describe(value)}`, { param });
  }
}
