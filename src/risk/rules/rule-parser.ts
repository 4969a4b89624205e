import { AssertionFailure } from '../../platform/assert.ts';
import { ruleLimits } from './rule-limits.ts';
import { closest, ruleError, type RuleError, type RuleErrorKind, type RuleSpan } from './rule-errors.ts';
import { tokenize, type Token } from './rule-lexer.ts';
import {
  ruleActions, ruleKeywords, textOperators,
  type AttributeOperand, type CompareOperator, type RuleAction, type RuleCondition, type RuleLiteral, type RuleOperand,
  type RuleTree, type TextOperator,
} from './rule-syntax.ts';

/**
 * Parses a rule's text into a tree, or reports the first syntax error (and every lexical one). Grammar (EBNF);
 * keywords, actions and helper names ignore case, attribute names do not:
 *
 *   rule        = action , "if" , condition ;
 *   action      = "request_step_up" | "allow" | "block" | "review" ;
 *   condition   = conjunction , { "or" , conjunction } ;
 *   conjunction = negation , { "and" , negation } ;
 *   negation    = "not" , negation | primary ;
 *   primary     = "(" , condition , ")"
 *               | "is_missing" , "(" , attribute , ")"
 *               | operand , [ compare_op , operand
 *                           | [ "not" ] , "in" , "(" , literal , { "," , literal } , ")"
 *                           | text_op , operand ] ;
 *   operand     = attribute | literal ;
 *   literal     = number | string | "true" | "false" ;
 *   compare_op  = "=" | "!=" | "<" | "<=" | ">" | ">=" ;
 *   text_op     = "starts_with" | "ends_with" | "contains" ;
 *   attribute   = ":" , name , ":" ;                        (* name from the attribute catalogue *)
 *   number      = [ "-" ] , digit , { digit } , [ "." , digit , { digit } ] ;
 *   string      = "'" , { character - ( "'" | "\" | newline ) | "\'" | "\\" } , "'" ;
 *
 * `and` binds tighter than `or`, `not` tighter than both; a primary that is an operand alone must be boolean.
 */
export type ParseResult =
  | { readonly ok: true; readonly tree: RuleTree }
  /** `attributes` are those the lexer saw, so that unknown names can be reported beside a syntax error. */
  | { readonly ok: false; readonly errors: readonly RuleError[]; readonly attributes: readonly AttributeOperand[] };

export function parseRule(text: string): ParseResult {
  if (text.length > ruleLimits.ruleTextLengthMax) {
    const message = `The rule is longer than ${ruleLimits.ruleTextLengthMax} characters`;
    const span = { offset: ruleLimits.ruleTextLengthMax, length: text.length - ruleLimits.ruleTextLengthMax };
    return { ok: false, errors: [ruleError(text, 'limit', message, span)], attributes: [] };
  }
  const { tokens, errors } = tokenize(text);
  const attributes = tokens
    .filter((token) => token.kind === 'attribute')
    .map((token): AttributeOperand => ({ kind: 'attribute', name: token.value, span: spanOf(token) }));
  if (errors.length > 0) return { ok: false, errors, attributes };
  try {
    return { ok: true, tree: new Parser(text, tokens).rule() };
  } catch (error) {
    if (!(error instanceof SyntaxFailure)) throw error;
    return { ok: false, errors: [ruleError(text, error.kind, error.message, error.span)], attributes };
  }
}

/** Stops the parse at the first syntax error; caught in `parseRule`, never seen outside. */
class SyntaxFailure extends Error {
  constructor(message: string, readonly span: RuleSpan, readonly kind: RuleErrorKind = 'syntax') {
    super(message);
  }
}

function fail(message: string, span: RuleSpan, kind: RuleErrorKind = 'syntax'): never {
  throw new SyntaxFailure(message, spanOf(span), kind);
}

function spanOf(span: RuleSpan): RuleSpan {
  return { offset: span.offset, length: span.length };
}

function cover(first: RuleSpan, last: RuleSpan): RuleSpan {
  return { offset: first.offset, length: last.offset + last.length - first.offset };
}

/** A token as a message quotes it. */
function describe(token: Token): string {
  if (token.kind === 'end') return 'the end of the rule';
  if (token.kind === 'attribute') return token.text;
  return `"${token.text}"`;
}

const missingWords = new Set(['null', 'nil', 'none', 'undefined', 'missing']);

/** What to add to "expected a value, found …" when the analyst wrote a bare word. */
function valueHint(token: Token): string {
  if (token.kind !== 'word' || ruleKeywords.has(token.value)) return '';
  if (missingWords.has(token.value)) return ' — test for a missing value with is_missing(:attribute:)';
  return ` — text is written in single quotes ('${token.text}'), attributes between colons (:${token.text}:)`;
}

function startsOperand(token: Token): boolean {
  if (token.kind === 'word') return token.value === 'true' || token.value === 'false';
  return token.kind === 'attribute' || token.kind === 'number' || token.kind === 'string';
}

const operatorList = '=, !=, <, <=, >, >=, IN, NOT IN, starts_with, ends_with or contains';

class Parser {
  private index = 0;
  private depth = 0;

  constructor(private readonly text: string, private readonly tokens: readonly Token[]) {}

  rule(): RuleTree {
    const first = this.peek();
    if (first.kind === 'end') fail('The rule is empty: write an action and a condition, e.g. block if :amount_usd: > 5000', first);
    const action = this.action();
    const ifToken = this.peek();
    if (!this.isWord(ifToken, 'if')) fail(`Expected "if" after "${first.text}", found ${describe(ifToken)}`, ifToken);
    this.take();
    const condition = this.or();
    const end = this.peek();
    if (end.kind !== 'end') fail(this.unexpectedAfterCondition(end), end);
    return { action, condition };
  }

  private peek(ahead = 0): Token {
    const token = this.tokens[Math.min(this.index + ahead, this.tokens.length - 1)];
    if (token === undefined) throw new AssertionFailure('the token list ends with an end token');
    return token;
  }

  private take(): Token {
    const token = this.peek();
    if (token.kind !== 'end') this.index += 1;
    return token;
  }

  private previous(): Token {
    return this.tokens[this.index - 1] ?? this.peek();
  }

  private isWord(token: Token, word: string): boolean {
    return token.kind === 'word' && token.value === word;
  }

  private action(): RuleAction {
    const token = this.take();
    const action = ruleActions.find((candidate) => this.isWord(token, candidate));
    if (action !== undefined) return action;
    const list = 'request_step_up, allow, block or review';
    const guess = token.kind === 'word' ? closest(token.value, ruleActions) : undefined;
    if (guess !== undefined) fail(`Unknown action ${describe(token)} — did you mean ${guess}? A rule starts with ${list}`, token);
    fail(`A rule starts with an action: ${list}; found ${describe(token)}`, token);
  }

  /** Enters a nested parenthesis or `not`, within the depth limit (the parser's recursion is bounded by it). */
  private enter(token: Token): void {
    this.depth += 1;
    if (this.depth > ruleLimits.ruleNestingDepthMax) {
      fail(`Conditions are nested more than ${ruleLimits.ruleNestingDepthMax} deep`, token, 'limit');
    }
  }

  private or(): RuleCondition {
    const operands = [this.and()];
    while (this.isWord(this.peek(), 'or')) {
      this.take();
      operands.push(this.and());
    }
    return this.join('or', operands);
  }

  private and(): RuleCondition {
    const operands = [this.not()];
    while (this.isWord(this.peek(), 'and')) {
      this.take();
      operands.push(this.not());
    }
    return this.join('and', operands);
  }

  private join(kind: 'and' | 'or', operands: RuleCondition[]): RuleCondition {
    const first = operands[0];
    const last = operands[operands.length - 1];
    if (first === undefined || last === undefined) throw new AssertionFailure('a conjunction has operands');
    return operands.length === 1 ? first : { kind, operands, span: cover(first.span, last.span) };
  }

  private not(): RuleCondition {
    const token = this.peek();
    if (!this.isWord(token, 'not')) return this.primary();
    this.take();
    this.enter(token);
    const operand = this.not();
    this.depth -= 1;
    return { kind: 'not', operand, span: cover(token, operand.span) };
  }

  private primary(): RuleCondition {
    const token = this.peek();
    if (token.kind === 'open') return this.parenthesised(token);
    if (this.isWord(token, 'is_missing')) return this.isMissing(token);
    if (startsOperand(token)) return this.predicate();
    if (token.kind === 'end') fail(`Expected a condition after ${describe(this.previous())}`, token);
    fail(`Expected a condition, found ${describe(token)}${valueHint(token)}`, token);
  }

  private parenthesised(open: Token): RuleCondition {
    this.take();
    this.enter(open);
    const condition = this.or();
    const close = this.peek();
    if (close.kind !== 'close') {
      const { line, column } = ruleError(this.text, 'syntax', '', open).position;
      fail(`Expected ")" to close the "(" at line ${line}, column ${column}, found ${describe(close)}`, close);
    }
    this.take();
    this.depth -= 1;
    return { ...condition, span: cover(open, close) };
  }

  private isMissing(keyword: Token): RuleCondition {
    this.take();
    const usage = 'is_missing takes one attribute in parentheses, e.g. is_missing(:ip_country:)';
    const open = this.take();
    if (open.kind !== 'open') fail(usage, open);
    const attribute = this.take();
    if (attribute.kind !== 'attribute') fail(usage, attribute);
    const close = this.take();
    if (close.kind !== 'close') fail(`Expected ")" after ${attribute.text}, found ${describe(close)}`, close);
    return {
      kind: 'is_missing', attribute: { kind: 'attribute', name: attribute.value, span: spanOf(attribute) }, span: cover(keyword, close),
    };
  }

  private predicate(): RuleCondition {
    const left = this.operand();
    const token = this.peek();
    if (token.kind === 'operator') {
      this.take();
      const right = this.operandAfter(token);
      return { kind: 'compare', operator: token.value as CompareOperator, left, right, span: cover(left.span, right.span) };
    }
    if (this.isWord(token, 'in')) return this.inList(left, false);
    if (this.isWord(token, 'not')) {
      this.take();
      if (!this.isWord(this.peek(), 'in')) fail(`Expected IN after NOT, as in :card_country: NOT IN ('US', 'CA')`, this.peek());
      return this.inList(left, true);
    }
    if (token.kind === 'word' && (textOperators as readonly string[]).includes(token.value)) {
      this.take();
      const right = this.operandAfter(token);
      return { kind: 'text', operator: token.value as TextOperator, left, right, span: cover(left.span, right.span) };
    }
    if (startsOperand(token)) {
      fail(`Expected an operator (${operatorList}) between ${describe(this.previous())} and ${describe(token)}`, token);
    }
    return { kind: 'value', operand: left, span: left.span };
  }

  private operandAfter(operator: Token): RuleOperand {
    const token = this.peek();
    if (!startsOperand(token)) {
      fail(`Expected a value or an attribute after "${operator.text}", found ${describe(token)}${valueHint(token)}`, token);
    }
    return this.operand();
  }

  private operand(): RuleOperand {
    const token = this.take();
    const span = spanOf(token);
    switch (token.kind) {
      case 'attribute':
        return { kind: 'attribute', name: token.value, span };
      case 'string':
        return { kind: 'string', value: token.value, span };
      case 'number': {
        const value = Number(token.text);
        if (!Number.isFinite(value)) fail('This number is too large', token);
        return { kind: 'number', value, text: token.text, span };
      }
      default:
        if (this.isWord(token, 'true') || this.isWord(token, 'false')) return { kind: 'boolean', value: token.value === 'true', span };
        throw new AssertionFailure(`${token.kind} starts no operand`);
    }
  }

  private inList(left: RuleOperand, negated: boolean): RuleCondition {
    this.take();
    const open = this.take();
    if (open.kind !== 'open') {
      fail(`IN is followed by a list of values in parentheses, e.g. IN ('US', 'CA'); found ${describe(open)}`, open);
    }
    if (this.peek().kind === 'close') fail('The list is empty: give at least one value', this.peek());
    const items: RuleLiteral[] = [];
    // Each pass takes a value and a separator, so the loop ends within the token count.
    for (;;) {
      const token = this.peek();
      if (token.kind === 'attribute') fail('A list holds values, not attributes: compare two attributes with = or !=', token);
      if (!startsOperand(token)) fail(`Expected a value in the list, found ${describe(token)}${valueHint(token)}`, token);
      if (items.length === ruleLimits.ruleListItemsMax) fail(`A list holds at most ${ruleLimits.ruleListItemsMax} values`, token, 'limit');
      items.push(this.operand() as RuleLiteral);
      const separator = this.take();
      if (separator.kind === 'close') return { kind: 'in', negated, left, items, span: cover(left.span, separator) };
      if (separator.kind !== 'comma') {
        fail(`Expected "," or ")" in the list, found ${describe(separator)}${valueHint(separator)}`, separator);
      }
    }
  }

  private unexpectedAfterCondition(token: Token): string {
    if (token.kind === 'close') return 'This ")" closes no "("';
    if (token.kind === 'comma') {
      return 'Unexpected "," — a list of values is written IN (\'US\', \'CA\'), and numbers have no thousands separators';
    }
    if (this.isWord(token, 'if')) return 'A rule has one "if"; join conditions with and / or';
    const guess = token.kind === 'word' ? closest(token.value, ['and', 'or']) : undefined;
    const hint = guess !== undefined ? ` — did you mean ${guess}?` : valueHint(token);
    return `Expected "and", "or" or the end of the rule, found ${describe(token)}${hint}`;
  }
}
