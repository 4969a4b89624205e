import { AjvCompiler, type ValidatorFactory } from '@fastify/ajv-compiler';

/**
 * Fastify's validator compiler (the same Ajv, with the options each listener gives), with two changes to when
 * it compiles:
 * - **on a route's first request**, not when the server starts. Fastify compiles every route's schemas before it
 *   listens: about three seconds of CPU for the merchant API's two hundred schemas, paid by every start of Coffer
 *   (and every command that starts a server) for routes that may never be called. The first request to a route
 *   pays for its own schema once, a few milliseconds.
 * - **once per process**: one Ajv per set of options, shared by every server the process builds. Ajv keeps what it
 *   compiled by schema object, so a schema defined once is compiled once.
 * What is checked, and the errors a request gets, are unchanged.
 */
const pool = AjvCompiler();

type Validate = ReturnType<ReturnType<ValidatorFactory>>;

export const lazyValidatorFactory: ValidatorFactory = (externalSchemas, options) => {
  const compilerOf = pool(externalSchemas, options);
  return (route) => {
    let compiled: Validate | undefined;
    const validate = ((data: unknown) => {
      compiled ??= compilerOf(route);
      const valid = compiled(data);
      validate.errors = compiled.errors;
      return valid;
    }) as Validate;
    return validate;
  };
};
