import { ruleError, type RuleError, type RuleSpan } from './rule-errors.ts';

/**
 * Splits a rule's text into tokens. It keeps going after a problem, so that every lexical mistake in the text is
 * reported at once; the parser runs only on text without them.
 */
export type TokenKind = 'attribute' | 'number' | 'string' | 'word' | 'operator' | 'open' | 'close' | 'comma' | 'end';

export interface Token extends RuleSpan {
  readonly kind: TokenKind;
  /** The source text of the token. */
  readonly text: string;
  /** attribute: the name between the colons; string: the value; word: lower-cased; otherwise the text. */
  readonly value: string;
}

export interface Tokens {
  readonly tokens: readonly Token[];
  readonly errors: readonly RuleError[];
}

const wordPattern = /[A-Za-z_][A-Za-z0-9_]*/y;
const numberPattern = /-?[0-9]+(?:\.[0-9]+)?/y;
/** An attribute name runs to the closing colon; anything but these is kept, so a misspelt name can be suggested. */
const attributeNamePattern = /[^:\s'"(),]*/y;

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

function isSpace(char: string): boolean {
  return char === ' ' || char === '\t' || char === '\n' || char === '\r';
}

function match(pattern: RegExp, text: string, offset: number): string {
  pattern.lastIndex = offset;
  return pattern.exec(text)?.[0] ?? '';
}

export function tokenize(text: string): Tokens {
  const tokens: Token[] = [];
  const errors: RuleError[] = [];
  const fail = (message: string, offset: number, length: number): void => {
    errors.push(ruleError(text, 'syntax', message, { offset, length }));
  };
  let offset = 0;
  // Every pass of the loop consumes at least one character, so it ends within text.length passes.
  while (offset < text.length) {
    const char = text.charAt(offset);
    if (isSpace(char)) {
      offset += 1;
      continue;
    }
    const token = readToken(text, offset, fail);
    if (token.kind !== 'end') tokens.push(token);
    offset += Math.max(1, token.length);
  }
  tokens.push({ kind: 'end', text: '', value: '', offset: text.length, length: 0 });
  return { tokens, errors };
}

type Fail = (message: string, offset: number, length: number) => void;

/** The token at `offset`, or an `end` token spanning the bad characters after reporting them. */
function readToken(text: string, offset: number, fail: Fail): Token {
  const char = text.charAt(offset);
  const make = (kind: TokenKind, length: number, value = text.slice(offset, offset + length)): Token =>
    ({ kind, text: text.slice(offset, offset + length), value, offset, length });
  if (char === '(') return make('open', 1);
  if (char === ')') return make('close', 1);
  if (char === ',') return make('comma', 1);
  if (char === ':') return readAttribute(text, offset, fail);
  if (char === "'") return readString(text, offset, fail);
  if (char === '"') {
    const close = text.indexOf('"', offset + 1);
    const length = (close === -1 ? text.length : close + 1) - offset;
    fail(`Text is written in single quotes: '${text.slice(offset + 1, offset + length - 1)}'`, offset, length);
    return make('end', length);
  }
  if (isDigit(text.charCodeAt(offset)) || (char === '-' && isDigit(text.charCodeAt(offset + 1)))) {
    return readNumber(text, offset, fail);
  }
  if (char === '.' && isDigit(text.charCodeAt(offset + 1))) {
    const digits = match(numberPattern, text, offset + 1);
    fail(`A number starts with a digit: write 0.${digits}`, offset, digits.length + 1);
    return make('end', digits.length + 1);
  }
  const operator = readOperator(text, offset, fail);
  if (operator !== undefined) return operator;
  const word = match(wordPattern, text, offset);
  if (word !== '') return make('word', word.length, word.toLowerCase());
  const codePoint = String.fromCodePoint(text.codePointAt(offset) ?? 0);
  fail(`Unexpected character ${JSON.stringify(codePoint)}`, offset, codePoint.length);
  return make('end', codePoint.length);
}

function readAttribute(text: string, offset: number, fail: Fail): Token {
  const name = match(attributeNamePattern, text, offset + 1);
  const closed = text.charAt(offset + 1 + name.length) === ':';
  const length = name.length + (closed ? 2 : 1);
  const token: Token = { kind: 'attribute', text: text.slice(offset, offset + length), value: name, offset, length };
  if (name === '') {
    fail('An attribute is written between colons, e.g. :amount_usd:', offset, length);
    return { ...token, kind: 'end' };
  }
  if (!closed) {
    fail(`The attribute :${name} is not closed: write :${name}:`, offset, length);
    return { ...token, kind: 'end' };
  }
  return token;
}

function readString(text: string, offset: number, fail: Fail): Token {
  let value = '';
  let i = offset + 1;
  for (; i < text.length; i += 1) {
    const char = text.charAt(i);
    if (char === "'") {
      const length = i + 1 - offset;
      return { kind: 'string', text: text.slice(offset, offset + length), value, offset, length };
    }
    if (char === '\n') break;
    if (char === '\\') {
      const escaped = text.charAt(i + 1);
      if (escaped === "'" || escaped === '\\') {
        value += escaped;
        i += 1;
        continue;
      }
      fail("Unknown escape: inside quotes, write \\' for a quote and \\\\ for a backslash", i, Math.min(2, text.length - i));
    }
    value += char;
  }
  // Unclosed on its line: if a quote closes it further on, the text runs over a line break; otherwise it is never
  // closed. Either way the lexer goes on after it, so that its closing quote does not open a text of its own.
  const close = i < text.length ? closingQuote(text, i) : -1;
  const end = close === -1 ? text.length : close + 1;
  const message = close === -1 ? "This text has no closing quote (')" : 'Text in quotes cannot run over a line break';
  fail(message, offset, end - offset);
  return { kind: 'end', text: text.slice(offset, end), value, offset, length: end - offset };
}

/** The offset of the next quote at or after `from` that is not escaped, or -1. */
function closingQuote(text: string, from: number): number {
  for (let i = from; i < text.length; i += 1) {
    const char = text.charAt(i);
    if (char === '\\') i += 1;
    else if (char === "'") return i;
  }
  return -1;
}

function readNumber(text: string, offset: number, fail: Fail): Token {
  const digits = match(numberPattern, text, offset);
  const after = text.charAt(offset + digits.length);
  if (after === '.') {
    const message = digits.includes('.')
      ? 'A number has one decimal point at most'
      : `Write digits after the decimal point, e.g. ${digits}.00`;
    fail(message, offset, digits.length + 1);
    return { kind: 'end', text: text.slice(offset, offset + digits.length + 1), value: digits, offset, length: digits.length + 1 };
  }
  return { kind: 'number', text: digits, value: digits, offset, length: digits.length };
}

const operatorMistakes: Readonly<Record<string, string>> = {
  '==': 'Use = to compare (a single equals sign)',
  '<>': 'Use != for "not equal"',
  '=<': 'Use <= for "at most"',
  '=>': 'Use >= for "at least"',
};

function readOperator(text: string, offset: number, fail: Fail): Token | undefined {
  const two = text.slice(offset, offset + 2);
  const mistake = operatorMistakes[two];
  if (mistake !== undefined) {
    fail(mistake, offset, 2);
    return { kind: 'end', text: two, value: two, offset, length: 2 };
  }
  if (two === '!=' || two === '<=' || two === '>=') return { kind: 'operator', text: two, value: two, offset, length: 2 };
  const one = text.charAt(offset);
  if (one === '=' || one === '<' || one === '>') return { kind: 'operator', text: one, value: one, offset, length: 1 };
  if (one === '!') {
    fail('Use != for "not equal", or not before a condition', offset, 1);
    return { kind: 'end', text: one, value: one, offset, length: 1 };
  }
  return undefined;
}
