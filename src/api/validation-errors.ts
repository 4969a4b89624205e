import { CofferError } from '../domain/errors.ts';

/** The parts of an Ajv error this mapping reads (Fastify passes Ajv's errors with `verbose` on). */
export interface SchemaError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  data?: unknown;
  message?: string | undefined;
  /** Set on errors about an object's key (`propertyNames`). */
  propertyName?: string | undefined;
}

/** `/payment_method_options/card/foo` becomes `payment_method_options[card][foo]`, as Stripe names parameters. */
export function parameterName(instancePath: string, child?: string): string {
  const parts = instancePath.split('/').filter((part) => part !== '').map((part) => part.replaceAll('~1', '/').replaceAll('~0', '~'));
  if (child !== undefined) parts.push(child);
  const [head, ...rest] = parts;
  if (head === undefined) return '';
  return head + rest.map((part) => `[${part}]`).join('');
}

/** A value as a message shows it, cut to its first 200 characters. */
function describe(value: unknown): string {
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

const depth = (error: SchemaError) => error.instancePath.split('/').length;
const isTypeCheck = (error: SchemaError) => error.keyword === 'type' || error.keyword === 'const';

/**
 * Ajv reports every violation (allErrors), and an `anyOf` failure (`''` or an object, say) lists every branch's
 * complaint. An unknown parameter is reported first, as Stripe does; otherwise the deepest complaint, and at
 * equal depth a constraint beats a type mismatch, and a type mismatch that is not "must be a string" (the `''`
 * branch) beats one that is.
 */
function mostSpecific(errors: readonly SchemaError[]): SchemaError | undefined {
  const unknown = errors.find((error) => error.keyword === 'additionalProperties');
  if (unknown !== undefined) return unknown;
  const candidates = errors.filter((error) => error.keyword !== 'anyOf');
  const rank = (error: SchemaError) => [
    error.keyword === 'required' ? 0 : 1,
    -depth(error),
    error.propertyName !== undefined ? 0 : 1,
    isTypeCheck(error) ? 1 : 0,
    error.keyword === 'const' || error.params.type === 'string' ? 1 : 0,
  ];
  return [...candidates].sort((a, b) => {
    const [ra, rb] = [rank(a), rank(b)];
    for (let i = 0; i < ra.length; i += 1) if (ra[i] !== rb[i]) return (ra[i] ?? 0) - (rb[i] ?? 0);
    return 0;
  })[0] ?? errors[0];
}

/** The values a union of literals accepts at `instancePath` (TypeBox turns enums into `anyOf` of `const`). */
function allowedValues(errors: readonly SchemaError[], instancePath: string): unknown[] {
  return errors
    .filter((error) => error.keyword === 'const' && error.instancePath === instancePath)
    .map((error) => error.params.allowedValue)
    .filter((value) => value !== '');
}

/** What the patterns a caller may meet ask for, in words, for the refusal to say. */
const patternWords: Record<string, string> = {
  '^[A-Za-z0-9]+$': 'letters and digits only',
  '^[A-Za-z0-9_-]+$': 'letters, digits, - and _ only',
};

function emptyValue(param: string): CofferError {
  return new CofferError(
    'parameter_invalid_empty',
    `You passed an empty string for '${param}'. We assume empty values are an attempt to unset a parameter; ` +
      `however '${param}' cannot be unset. You should remove '${param}' from your request or supply a non-empty value.`,
    { param },
  );
}

/** Turns the first schema violation into Stripe's error for it, naming the parameter. */
export function schemaErrorToCofferError(errors: readonly SchemaError[]): CofferError {
  const error = mostSpecific(errors);
  if (error === undefined) return new CofferError('parameter_invalid', 'Invalid request.');
  const param = parameterName(error.instancePath);
  // Nothing given as a card (its number, its security code, or the card itself sent as a string or a list) is
  // repeated back, not even a malformed one. Options for card payments (`payment_method_options[card]`) are no card.
  const value = /(^|\[)card\]?(\[|$)/.test(param) && !param.startsWith('payment_method_options') ? '(not shown)' : error.data;
  if (value === '' && ['type', 'const', 'minLength', 'pattern', 'enum'].includes(error.keyword)) return emptyValue(param);
  if (error.propertyName !== undefined) {
    const key = String(error.propertyName);
    const problem = key.length === 0 ? 'is empty' : error.keyword === 'pattern' ? 'holds a square bracket, which keys cannot' : 'is longer than allowed';
    return new CofferError('parameter_invalid', `Invalid ${param}: the key '${key}' ${problem} (keys are 1 to 40 characters, without [ or ]).`, { param });
  }
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
      const allowed = allowedValues(errors, error.instancePath);
      if (allowed.length > 0) {
        return new CofferError('parameter_invalid', `Invalid ${param}: must be one of ${allowed.join(', ')} (got ${describe(value)})`, { param });
      }
      const expected = String(error.params.type ?? 'value');
      if (expected === 'integer') {
        // A form value that looked like an integer was coerced; one still a string came as a JSON string.
        const shown = typeof value === 'string' && /^-?\d+$/.test(value) ? JSON.stringify(value) : describe(value);
        return new CofferError('parameter_invalid_integer', `Invalid integer: ${shown}`, { param });
      }
      return new CofferError('parameter_invalid', `Invalid ${param}: expected ${/^[aeiou]/.test(expected) ? 'an' : 'a'} ${expected}, got ${describe(value)}`, { param });
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
    case 'minimum':
    case 'maximum':
      return new CofferError(
        'parameter_invalid_integer',
        `Invalid ${param}: must be ${error.keyword === 'minimum' ? 'at least' : 'at most'} ${String(error.params.limit)}`,
        { param },
      );
    case 'pattern': {
      const words = patternWords[String(error.params.pattern)];
      return new CofferError('parameter_invalid', `Invalid ${param}: ${describe(value)} is not in the expected format${words === undefined ? '' : ` (${words})`}`, { param });
    }
    default:
      return new CofferError('parameter_invalid', `Invalid ${param}: ${describe(value)}`, { param });
  }
}
