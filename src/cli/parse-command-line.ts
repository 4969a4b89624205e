import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CofferError } from '../domain/errors.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * A command line a command cannot run (an unknown option or subcommand, a missing or unexpected argument): the
 * message names what is wrong, and the command's usage follows it. The `coffer` command exits 2.
 */
export class UsageError extends Error {
  constructor(message: string, readonly usage: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** `--help` (or `-h`), anywhere before `--`: the caller prints its usage and exits 0, whatever else was given. */
export interface HelpWanted {
  help: true;
}

export type ParsedCommandLine<O extends Options> = { help: false } & ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>>;

/**
 * Parses the arguments of `coffer <command>` (named in messages) against its options. Node's own messages for an
 * unknown option suggest `-- "--x"` with unbalanced quotes and do not say whose option it is: those are said here.
 */
export function parseCommandLine<const O extends Options>(command: string, argv: string[], options: O, usage: string): HelpWanted | ParsedCommandLine<O> {
  const { tokens } = parseArgs({ args: argv, options, allowPositionals: true, strict: false, tokens: true });
  for (const token of tokens) {
    if (token.kind === 'option' && (token.name === 'help' || token.name === 'h') && !Object.hasOwn(options, token.name)) return { help: true };
  }
  for (const token of tokens) {
    if (token.kind === 'option' && !Object.hasOwn(options, token.name)) throw new UsageError(`unknown option "${token.rawName}" for coffer ${command}`, usage);
  }
  try {
    return { help: false, ...parseArgs({ args: argv, options, allowPositionals: true, strict: true }) };
  } catch (error) {
    // What is left: an option without its value, or a value given to a switch; Node's messages say which.
    throw new UsageError(error instanceof Error ? error.message : String(error), usage);
  }
}

/** Refuses what follows the `count` positional arguments a command takes. */
export function refuseExtraArguments(command: string, positionals: string[], count: number, usage: string): void {
  const extra = positionals[count];
  if (extra !== undefined) {
    throw new UsageError(`unexpected argument "${extra}" for coffer ${command}`, usage);
  }
}

/** The subcommand of `coffer <command> <subcommand>`, which must be one of `known`. */
export function subcommand<const S extends string>(command: string, given: string | undefined, known: readonly S[], usage: string): S {
  const list = known.length === 1 ? (known[0] ?? '') : `${known.slice(0, -1).join(', ')} or ${known.at(-1) ?? ''}`;
  if (given === undefined) throw new UsageError(`missing ${command} command: use ${list}`, usage);
  const found = known.find((name) => name === given);
  if (found === undefined) throw new UsageError(`unknown ${command} command "${given}": use ${list}`, usage);
  return found;
}

/**
 * A command's refusal (no such merchant or key, a bad value: a CofferError, whose message names the problem) is
 * printed and exits 1; anything else is a failure, thrown on.
 */
export function refused(error: unknown): 1 {
  if (!(error instanceof CofferError)) throw error;
  process.stderr.write(`coffer: ${error.message}\n`);
  return 1;
}
