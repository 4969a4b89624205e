import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  compileRule, compileRuleSet, decide, evaluate, parseRule, prepareInput, printRule, ruleActions, ruleAttributeNames, ruleAttributes,
  ruleLimits,
  type CompiledRule, type RuleAttributeName, type RuleCondition, type RuleError, type RuleInput, type RuleLiteral, type RuleOperand,
  type RuleScalar, type RuleSet, type RuleTree, type RuleValueType,
} from '../../src/risk/rules/index.ts';
import { positionAt } from '../../src/risk/rules/rule-errors.ts';
import { ruleFixtures, storefrontRules } from './rule-fixtures.ts';

function compiled(text: string): CompiledRule {
  const result = compileRule(text);
  assert.ok(result.ok, `${text} compiles: ${result.ok ? '' : JSON.stringify(result.errors)}`);
  return result.rule;
}

function compiledSet(definitions: Parameters<typeof compileRuleSet>[0]): RuleSet {
  const result = compileRuleSet(definitions);
  assert.ok(result.ok, `the rule set compiles: ${result.ok ? '' : JSON.stringify(result.errors)}`);
  return result.ruleSet;
}

function errorsOf(text: string): readonly RuleError[] {
  const result = compileRule(text);
  assert.ok(!result.ok, `${JSON.stringify(text)} is rejected`);
  return result.errors;
}

// Goal: every fixture payment gets exactly the decision, deciding rule, active matches and shadow matches its
// fixture states; together the fixtures cover precedence, first match, missing attributes under and / or / not,
// attribute against attribute, lists, numeric edges, case handling and shadow mode.
describe('rule fixtures', () => {
  test('there are at least 40 fixtures', () => {
    assert.ok(ruleFixtures.length >= 40, `${ruleFixtures.length} fixtures`);
  });
  for (const fixture of ruleFixtures) {
    test(fixture.name, () => {
      const decision = decide(compiledSet(fixture.rules), fixture.input);
      assert.deepEqual(decision, fixture.expected);
    });
  }
});

describe('rule evaluation', () => {
  test('evaluate reports the truth and the attributes that were missing; a missing one makes the rule unknown (it does not fire)', () => {
    const rule = compiled('block if :amount_usd: > 5000 and :card_country: != :ip_country:');
    assert.deepEqual(evaluate(rule, { amount_usd: 6000, card_country: 'US', ip_country: 'FR' }), { fired: true, truth: 'true', missing: [] });
    assert.deepEqual(evaluate(rule, { amount_usd: 6000, card_country: 'US', ip_country: 'us' }), { fired: false, truth: 'false', missing: [] });
    assert.deepEqual(evaluate(rule, { amount_usd: 6000, card_country: 'US' }), { fired: false, truth: 'unknown', missing: ['ip_country'] });
    assert.deepEqual(evaluate(rule, { amount_usd: 10 }), { fired: false, truth: 'unknown', missing: ['card_country', 'ip_country'] });
  });

  test('values of the wrong type at run time count as missing, and nothing throws', () => {
    const rule = compiled("review if :risk_score: >= 65 or :card_country: = 'US' or :livemode:");
    const junk = { risk_score: '70', card_country: 12, livemode: 'yes' } as unknown as RuleInput;
    assert.deepEqual(evaluate(rule, junk), { fired: false, truth: 'unknown', missing: ['risk_score', 'card_country', 'livemode'] });
  });

  test('the input is not changed by evaluation (lower-casing happens on a copy)', () => {
    const input = { card_country: 'US', ip_country: 'FR', amount_usd: 6000 };
    const before = structuredClone(input);
    decide(compiledSet(storefrontRules), input);
    assert.deepEqual(input, before);
  });

  test('the printed form of a rule is canonical and parses back to itself', () => {
    const rule = compiled("Block IF (:card_country: not in ('us', 'CA') OR :email: ENDS_WITH 'o\\'b') and Not :livemode:");
    const printed = printRule(rule.tree);
    assert.equal(printed, "block if (:card_country: NOT IN ('us', 'CA') or :email: ends_with 'o\\'b') and not :livemode:");
    assert.equal(printRule(compiled(printed).tree), printed);
  });

  test('parsed nodes keep the span of text they came from', () => {
    const text = "block if :amount_usd: > 5000 and (:card_country: IN ('US', 'CA') or not :livemode:)";
    const parsed = parseRule(text);
    assert.ok(parsed.ok);
    const condition = parsed.tree.condition;
    assert.equal(condition.kind, 'and');
    const slice = (node: { span: { offset: number; length: number } }): string => text.slice(node.span.offset, node.span.offset + node.span.length);
    assert.deepEqual(condition.operands.map(slice), [':amount_usd: > 5000', "(:card_country: IN ('US', 'CA') or not :livemode:)"]);
    const group = condition.operands[1];
    assert.ok(group?.kind === 'or');
    assert.deepEqual(group.operands.map(slice), [":card_country: IN ('US', 'CA')", 'not :livemode:']);
  });

  test('the catalogue has a type and a description for every attribute, velocity included', () => {
    assert.ok(ruleAttributeNames.length > 90);
    for (const name of ruleAttributeNames) {
      const attribute = ruleAttributes[name];
      assert.ok(['number', 'string', 'boolean'].includes(attribute.type), name);
      assert.ok(attribute.description.length > 10, name);
      assert.ok(attribute.type === 'string' || !attribute.caseInsensitive, `${name}: only strings ignore case`);
    }
    assert.equal(ruleAttributes.customer_payments_24h.type, 'number');
    assert.equal(ruleAttributes.card_country.caseInsensitive, true);
    assert.equal(ruleAttributes.card_fingerprint.caseInsensitive, false);
  });
});

interface ExpectedError {
  kind: RuleError['kind'];
  offset: number;
  line: number;
  column: number;
  length: number;
  /** The exact message, or a fragment it must contain. */
  message: string | RegExp;
}

function assertErrors(text: string, expected: readonly ExpectedError[]): void {
  const errors = errorsOf(text);
  assert.equal(errors.length, expected.length, `errors of ${JSON.stringify(text)}: ${JSON.stringify(errors)}`);
  expected.forEach((want, index) => {
    const error = errors[index];
    assert.ok(error !== undefined);
    assert.deepEqual(
      { kind: error.kind, offset: error.position.offset, line: error.position.line, column: error.position.column, length: error.length },
      { kind: want.kind, offset: want.offset, line: want.line, column: want.column, length: want.length },
      `position of error ${index} in ${JSON.stringify(text)}: ${error.message}`,
    );
    if (typeof want.message === 'string') assert.equal(error.message, want.message);
    else assert.match(error.message, want.message);
  });
}

const at = (kind: RuleError['kind'], offset: number, line: number, column: number, length: number, message: string | RegExp): ExpectedError =>
  ({ kind, offset, line, column, length, message });

// Goal: an analyst's mistake is reported where it is, with a message that says what to write instead. Each case
// states the exact offset, line, column and length of every error.
describe('rule validation errors', () => {
  const cases: Array<[string, string, ExpectedError[]]> = [
    ['a misspelt attribute, with a suggestion', "block if :card_countrie: = 'US'",
      [at('unknown_attribute', 9, 1, 10, 15, 'Unknown attribute :card_countrie: — did you mean :card_country:?')]],
    ['an attribute in the wrong case', 'block if :Amount_USD: > 5',
      [at('unknown_attribute', 9, 1, 10, 12, 'Unknown attribute :Amount_USD: — did you mean :amount_usd:?')]],
    ['an attribute nothing resembles', 'block if :shoe_size: > 5',
      [at('unknown_attribute', 9, 1, 10, 11, 'Unknown attribute :shoe_size: — it is not in the catalogue of rule attributes')]],
    ['ordering a string', 'block if :card_country: > 5',
      [at('type_mismatch', 9, 1, 10, 14, 'The operator > compares numbers, but :card_country: is a string')]],
    ['a number where text is expected, with a quoting hint', 'block if :card_bin: = 424242',
      [at('type_mismatch', 22, 1, 23, 6, "Cannot compare :card_bin:, a string, with 424242, a number — text is written in single quotes: '424242'")]],
    ['an error on the second line', "block if :amount_usd: > 5000 and\n  :card_country: = 5",
      [at('type_mismatch', 52, 2, 20, 1, /Cannot compare :card_country:, a string, with 5, a number/)]],
    ['a list value of the wrong type', "block if :ip_country: IN ('KP', 5, 'IR')",
      [at('type_mismatch', 32, 1, 33, 1, "The list value 5 is a number, but :ip_country: is a string — text is written in single quotes: '5'")]],
    ['a text helper on a number', "review if :amount_usd: ends_with '00'",
      [at('type_mismatch', 10, 1, 11, 12, 'ends_with works on text, but :amount_usd: is a number')]],
    ['a number standing alone as a condition', 'block if :amount_usd:',
      [at('type_mismatch', 9, 1, 10, 12, ':amount_usd: is a number, not a condition: compare it, e.g. :amount_usd: > 100')]],
    ['three mistakes, all reported in order', "block if :card_countrie: = 'US' and :amount: > 'x' and :ip_cuntry: = 5",
      [at('unknown_attribute', 9, 1, 10, 15, /:card_countrie: — did you mean :card_country:/),
        at('type_mismatch', 47, 1, 48, 3, "The operator > compares numbers, but 'x' is a string"),
        at('unknown_attribute', 55, 1, 56, 11, /:ip_cuntry: — did you mean :ip_country:/)]],
    ['an empty rule', '', [at('syntax', 0, 1, 1, 0, /The rule is empty/)]],
    ['a misspelt action', 'blok if :amount_usd: > 5',
      [at('syntax', 0, 1, 1, 4, 'Unknown action "blok" — did you mean block? A rule starts with request_step_up, allow, block or review')]],
    ['no if', 'block :amount_usd: > 5', [at('syntax', 6, 1, 7, 12, 'Expected "if" after "block", found :amount_usd:')]],
    ['a condition cut short', 'block if :amount_usd: > 5000 and', [at('syntax', 32, 1, 33, 0, 'Expected a condition after "and"')]],
    ['a comparison cut short', 'block if :amount_usd: >', [at('syntax', 23, 1, 24, 0, 'Expected a value or an attribute after ">", found the end of the rule')]],
    ['an unclosed parenthesis', 'block if (:amount_usd: > 5',
      [at('syntax', 26, 1, 27, 0, 'Expected ")" to close the "(" at line 1, column 10, found the end of the rule')]],
    ['a parenthesis too many', 'block if :amount_usd: > 5)', [at('syntax', 25, 1, 26, 1, 'This ")" closes no "("')]],
    ['unquoted text', "block if :card_country: = US",
      [at('syntax', 26, 1, 27, 2, /found "US" — text is written in single quotes \('US'\)/)]],
    ['double quotes', 'block if :card_country: = "US"', [at('syntax', 26, 1, 27, 4, "Text is written in single quotes: 'US'")]],
    ['==', 'block if :amount_usd: == 5', [at('syntax', 22, 1, 23, 2, 'Use = to compare (a single equals sign)')]],
    ['a trailing decimal point', 'block if :amount_usd: > 5.', [at('syntax', 24, 1, 25, 2, 'Write digits after the decimal point, e.g. 5.00')]],
    ['a leading decimal point', 'block if :amount_usd: > .5', [at('syntax', 24, 1, 25, 2, 'A number starts with a digit: write 0.5')]],
    ['thousands separators', 'block if :amount_usd: > 5,000', [at('syntax', 25, 1, 26, 1, /numbers have no thousands separators/)]],
    ['an empty list', 'block if :card_country: IN ()', [at('syntax', 28, 1, 29, 1, 'The list is empty: give at least one value')]],
    ['a list without commas', "block if :card_country: IN ('US' 'CA')", [at('syntax', 33, 1, 34, 4, `Expected "," or ")" in the list, found "'CA'"`)]],
    ['NOT without IN', "block if :card_country: NOT ('US')", [at('syntax', 28, 1, 29, 1, /Expected IN after NOT/)]],
    ['a missing operator', 'block if :amount_usd: 5000', [at('syntax', 22, 1, 23, 4, /Expected an operator \(=, !=, <, <=, >, >=, IN, NOT IN/)]],
    ['an unclosed attribute', "block if :card_country = 'US'", [at('syntax', 9, 1, 10, 13, 'The attribute :card_country is not closed: write :card_country:')]],
    ['is_missing of a value', "review if is_missing('US')", [at('syntax', 21, 1, 22, 4, /is_missing takes one attribute/)]],
    ['null', 'review if :ip_country: = null', [at('syntax', 25, 1, 26, 4, /is_missing\(:attribute:\)/)]],
    ['a misspelt and', "block if :amount_usd: > 5 adn :card_country: = 'US'", [at('syntax', 26, 1, 27, 3, /did you mean and\?/)]],
    ['a text without its closing quote', "block if :card_country: = 'US", [at('syntax', 26, 1, 27, 3, "This text has no closing quote (')")]],
    ['a number too large', `block if :amount_usd: > 1${'0'.repeat(400)}`, [at('syntax', 24, 1, 25, 401, 'This number is too large')]],
    ['an unknown character', 'block if :amount_usd: > 5 & :amount: > 1', [at('syntax', 26, 1, 27, 1, 'Unexpected character "&"')]],
    ['a syntax error and an unknown attribute before it', 'block if :amount_ud: > 5 and', [
      at('unknown_attribute', 9, 1, 10, 11, /did you mean :amount_usd:/), at('syntax', 28, 1, 29, 0, 'Expected a condition after "and"')]],
  ];
  for (const [name, text, expected] of cases) test(name, () => assertErrors(text, expected));

  test('offsets and columns count UTF-16 code units (😀 is two), lines restart at a line break', () => {
    assertErrors("review if :email: = 'é€😀' or\n:x: = 1", [at('unknown_attribute', 30, 2, 1, 3, /Unknown attribute :x:/)]);
  });

  test('limits: rule length, list length, nesting depth', () => {
    const long = `block if :card_bin: IN (${Array.from({ length: 2000 }, (_, i) => `'${String(i).padStart(6, '0')}'`).join(', ')})`;
    assert.ok(long.length > ruleLimits.ruleTextLengthMax);
    assertErrors(long, [at('limit', ruleLimits.ruleTextLengthMax, 1, ruleLimits.ruleTextLengthMax + 1, long.length - ruleLimits.ruleTextLengthMax,
      `The rule is longer than ${ruleLimits.ruleTextLengthMax} characters`)]);
    const values = Array.from({ length: ruleLimits.ruleListItemsMax + 1 }, (_, i) => String(i));
    const list = `block if :amount: IN (${values.join(',')})`;
    const lastOffset = list.lastIndexOf(',') + 1;
    assertErrors(list, [at('limit', lastOffset, 1, lastOffset + 1, String(ruleLimits.ruleListItemsMax).length,
      `A list holds at most ${ruleLimits.ruleListItemsMax} values`)]);
    assert.ok(compileRule(`block if ${'not '.repeat(ruleLimits.ruleNestingDepthMax)}:livemode:`).ok);
    const deep = `block if ${'('.repeat(ruleLimits.ruleNestingDepthMax + 1)}:livemode:${')'.repeat(ruleLimits.ruleNestingDepthMax + 1)}`;
    const offset = 9 + ruleLimits.ruleNestingDepthMax;
    assertErrors(deep, [at('limit', offset, 1, offset + 1, 1, `Conditions are nested more than ${ruleLimits.ruleNestingDepthMax} deep`)]);
  });

  test('rule set errors name the rule, its index and the field', () => {
    const result = compileRuleSet([
      { id: 'r1', text: 'block if :amount_usd: > 5', mode: 'active' },
      { id: 'r1', text: 'review if :risk_score: > 5', mode: 'shadow' },
      { id: 'bad id', text: 'review if :risk_scor: > 5', mode: 'active' },
    ]);
    assert.ok(!result.ok);
    assert.deepEqual(result.errors.map((error) => [error.index, error.ruleId, error.field, error.kind, error.position.offset, error.length]), [
      [1, 'r1', 'id', 'duplicate_rule_id', 0, 2],
      [2, 'bad id', 'id', 'invalid_rule_id', 0, 6],
      [2, 'bad id', 'text', 'unknown_attribute', 10, 11],
    ]);
  });
});

// A model of the semantics, written independently of the compiler (a direct recursive interpreter over the tree),
// for the property tests below.
type Truth = boolean | undefined;

function referenceValue(operand: RuleOperand, input: Readonly<Record<string, unknown>>, fold: boolean): RuleScalar | undefined {
  let value: unknown;
  if (operand.kind === 'attribute') {
    const raw = input[operand.name];
    const type = ruleAttributes[operand.name as RuleAttributeName].type;
    value = typeof raw === type && !(typeof raw === 'number' && Number.isNaN(raw)) ? raw : undefined;
  } else {
    value = operand.value;
  }
  if (typeof value === 'string' && fold) return value.toLowerCase();
  return value as RuleScalar | undefined;
}

function referenceFolds(operands: readonly RuleOperand[]): boolean {
  return operands.some((operand) => operand.kind === 'attribute' && ruleAttributes[operand.name as RuleAttributeName].caseInsensitive);
}

/** The attributes a condition compares (not those it only asks `is_missing` of). */
function comparedAttributes(node: RuleCondition): RuleOperand[] {
  switch (node.kind) {
    case 'and':
    case 'or':
      return node.operands.flatMap(comparedAttributes);
    case 'not':
      return comparedAttributes(node.operand);
    case 'is_missing':
      return [];
    case 'value':
      return [node.operand];
    case 'in':
      return [node.left];
    default:
      return [node.left, node.right];
  }
}

/** A rule's truth: unknown (it does not fire) when any attribute it compares is missing; else three-valued logic. */
function referenceRuleTruth(node: RuleCondition, input: Readonly<Record<string, unknown>>): Truth {
  const missing = comparedAttributes(node).some((operand) => operand.kind === 'attribute' && referenceValue(operand, input, false) === undefined);
  return missing ? undefined : referenceTruth(node, input);
}

function referenceTruth(node: RuleCondition, input: Readonly<Record<string, unknown>>): Truth {
  switch (node.kind) {
    case 'and': {
      const truths = node.operands.map((operand) => referenceTruth(operand, input));
      return truths.includes(false) ? false : truths.includes(undefined) ? undefined : true;
    }
    case 'or': {
      const truths = node.operands.map((operand) => referenceTruth(operand, input));
      return truths.includes(true) ? true : truths.includes(undefined) ? undefined : false;
    }
    case 'not': {
      const truth = referenceTruth(node.operand, input);
      return truth === undefined ? undefined : !truth;
    }
    case 'is_missing':
      return referenceValue(node.attribute, input, false) === undefined;
    case 'value':
      return referenceValue(node.operand, input, false) as boolean | undefined;
    case 'in': {
      const fold = referenceFolds([node.left]);
      const left = referenceValue(node.left, input, fold);
      if (left === undefined) return undefined;
      return node.items.some((item) => referenceValue(item, input, fold) === left) !== node.negated;
    }
    case 'compare':
    case 'text': {
      const fold = referenceFolds([node.left, node.right]);
      const left = referenceValue(node.left, input, fold);
      const right = referenceValue(node.right, input, fold);
      if (left === undefined || right === undefined) return undefined;
      switch (node.operator) {
        case '=': return left === right;
        case '!=': return left !== right;
        case '<': return left < right;
        case '<=': return left <= right;
        case '>': return left > right;
        case '>=': return left >= right;
        case 'starts_with': return String(left).startsWith(String(right));
        case 'ends_with': return String(left).endsWith(String(right));
        case 'contains': return String(left).includes(String(right));
      }
    }
  }
}

const span = { offset: 0, length: 0 };
const poolAttributes: Record<RuleValueType, readonly RuleAttributeName[]> = {
  number: ['amount_usd', 'risk_score', 'card_payments_1h'],
  string: ['card_country', 'ip_country', 'email', 'card_fingerprint'],
  boolean: ['livemode'],
};
const poolNumbers = ['0', '1', '2.5', '-1', '100', '100.00'];
const poolStrings = ['US', 'us', 'FR', "O'Brien", 'a\\b', '', 'Ab', 'ab'];

const arbitraryType = fc.constantFrom<RuleValueType>('number', 'string', 'boolean');

function arbitraryLiteral(type: RuleValueType): fc.Arbitrary<RuleLiteral> {
  if (type === 'number') return fc.constantFrom(...poolNumbers).map((text): RuleLiteral => ({ kind: 'number', value: Number(text), text, span }));
  if (type === 'string') return fc.constantFrom(...poolStrings).map((value): RuleLiteral => ({ kind: 'string', value, span }));
  return fc.boolean().map((value): RuleLiteral => ({ kind: 'boolean', value, span }));
}

function arbitraryOperand(type: RuleValueType): fc.Arbitrary<RuleOperand> {
  const attribute = fc.constantFrom(...poolAttributes[type]).map((name): RuleOperand => ({ kind: 'attribute', name, span }));
  return fc.oneof({ arbitrary: attribute, weight: 3 }, { arbitrary: arbitraryLiteral(type), weight: 1 });
}

const arbitraryPredicate: fc.Arbitrary<RuleCondition> = fc.oneof(
  arbitraryType.chain((type) => fc.record({
    kind: fc.constant('compare' as const),
    operator: type === 'number' ? fc.constantFrom('=', '!=', '<', '<=', '>', '>=' as const) : fc.constantFrom('=', '!=' as const),
    left: arbitraryOperand(type), right: arbitraryOperand(type), span: fc.constant(span),
  })),
  arbitraryType.chain((type) => fc.record({
    kind: fc.constant('in' as const), negated: fc.boolean(), left: arbitraryOperand(type),
    items: fc.array(arbitraryLiteral(type), { minLength: 1, maxLength: 3 }), span: fc.constant(span),
  })),
  fc.record({
    kind: fc.constant('text' as const), operator: fc.constantFrom('starts_with', 'ends_with', 'contains' as const),
    left: arbitraryOperand('string'), right: arbitraryOperand('string'), span: fc.constant(span),
  }),
  fc.record({
    kind: fc.constant('is_missing' as const),
    attribute: fc.constantFrom(...Object.values(poolAttributes).flat()).map((name) => ({ kind: 'attribute' as const, name, span })),
    span: fc.constant(span),
  }),
  fc.record({ kind: fc.constant('value' as const), operand: arbitraryOperand('boolean'), span: fc.constant(span) }),
);

const { condition: arbitraryCondition } = fc.letrec<{ condition: RuleCondition }>((tie) => ({
  condition: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    arbitraryPredicate,
    fc.record({ kind: fc.constant('not' as const), operand: tie('condition'), span: fc.constant(span) }),
    fc.record({ kind: fc.constantFrom('and' as const, 'or' as const), operands: fc.array(tie('condition'), { minLength: 2, maxLength: 3 }), span: fc.constant(span) }),
  ),
}));

const arbitraryTree: fc.Arbitrary<RuleTree> = fc.record({ action: fc.constantFrom(...ruleActions), condition: arbitraryCondition });

/** Inputs over the pool's attributes: each present, missing, null, or (rarely) of the wrong type. */
const arbitraryInput: fc.Arbitrary<Record<string, unknown>> = fc.record({
  amount_usd: fc.option(fc.constantFrom(0, 1, 2.5, -1, 100, Number.NaN), { nil: undefined }),
  risk_score: fc.option(fc.constantFrom(0, 1, 100, -1), { nil: null }),
  card_payments_1h: fc.option(fc.constantFrom(0, 1, 2.5), { nil: undefined }),
  card_country: fc.option(fc.constantFrom(...poolStrings), { nil: undefined }),
  ip_country: fc.option(fc.constantFrom(...poolStrings, 7), { nil: undefined }),
  email: fc.option(fc.constantFrom(...poolStrings), { nil: undefined }),
  card_fingerprint: fc.option(fc.constantFrom(...poolStrings), { nil: undefined }),
  livemode: fc.option(fc.oneof(fc.boolean(), fc.constant('true')), { nil: undefined }),
});

function usesIsMissing(node: RuleCondition): boolean {
  if (node.kind === 'is_missing') return true;
  if (node.kind === 'not') return usesIsMissing(node.operand);
  if (node.kind === 'and' || node.kind === 'or') return node.operands.some(usesIsMissing);
  return false;
}

// Goal: the language cannot be made to throw, printing and parsing agree, and the compiled closures mean exactly
// what the semantics says (checked against the reference interpreter above on generated rules and inputs).
describe('rule properties', () => {
  test('compiling any text never throws, and every error points inside the text', () => {
    const alphabet = fc.constantFrom(...'abk ():\'"=<>!,.-_\n\\0123456789'.split(''), 'block', 'if', ' and ', ' or ', 'not', ' IN ',
      ':amount_usd:', ':card_country:', "'US'", 'is_missing', 'é', '😀');
    const text = fc.oneof(fc.string({ unit: alphabet, maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 }));
    fc.assert(fc.property(text, (source) => {
      const result = compileRule(source);
      if (result.ok) return;
      assert.ok(result.errors.length > 0);
      let previous = 0;
      for (const error of result.errors) {
        assert.ok(error.position.offset >= previous && error.position.offset + error.length <= source.length, JSON.stringify(error));
        assert.deepEqual(error.position, positionAt(source, error.position.offset));
        assert.ok(error.message.length > 0);
        previous = error.position.offset;
      }
    }), { numRuns: 3000 });
  });

  test('printing a rule and parsing it back gives the same rule and the same meaning', () => {
    fc.assert(fc.property(arbitraryTree, fc.array(arbitraryInput, { minLength: 5, maxLength: 5 }), (tree, inputs) => {
      const printed = printRule(tree);
      const result = compileRule(printed);
      assert.ok(result.ok, `${printed}: ${result.ok ? '' : JSON.stringify(result.errors)}`);
      assert.equal(printRule(result.rule.tree), printed);
      for (const input of inputs) {
        const expected = referenceRuleTruth(tree.condition, input);
        const actual = evaluate(result.rule, input as RuleInput);
        assert.equal(actual.truth, expected === undefined ? 'unknown' : String(expected), `${printed} on ${JSON.stringify(input)}`);
      }
    }), { numRuns: 2000 });
  });

  test('a missing attribute never makes a rule fire: with values filled in, a rule that fired still fires', () => {
    const complete = arbitraryInput.map((input) => ({
      amount_usd: 1, risk_score: 1, card_payments_1h: 1, card_country: 'US', ip_country: 'FR', email: 'ab', card_fingerprint: 'Ab',
      livemode: true, ...Object.fromEntries(Object.entries(input).filter(([, value]) => value !== undefined && value !== null)),
    }));
    fc.assert(fc.property(arbitraryTree, complete, fc.subarray(Object.values(poolAttributes).flat()), (tree, full, dropped) => {
      fc.pre(!usesIsMissing(tree.condition));
      const rule = compileRule(printRule(tree));
      assert.ok(rule.ok);
      const partial = Object.fromEntries(Object.entries(full).filter(([name]) => !dropped.includes(name as RuleAttributeName)));
      if (evaluate(rule.rule, partial as RuleInput).fired) assert.ok(evaluate(rule.rule, full as RuleInput).fired, printRule(tree));
    }), { numRuns: 2000 });
  });

  test('deciding on arbitrary attribute maps never throws and always gives a well-formed decision', () => {
    const ruleSet = compiledSet(storefrontRules);
    const activeIds = storefrontRules.filter((rule) => rule.mode === 'active').map((rule) => rule.id);
    const shadowIds = storefrontRules.filter((rule) => rule.mode === 'shadow').map((rule) => rule.id);
    const names = fc.constantFrom(...ruleAttributeNames.filter((name) => storefrontRules.some((rule) => rule.text.includes(`:${name}:`))));
    const anything = fc.dictionary(names, fc.oneof(fc.anything(), fc.double(), fc.string(), fc.constantFrom('US', 'KP', 'coffer.dev')));
    fc.assert(fc.property(anything, (input) => {
      const decision = decide(ruleSet, input as RuleInput);
      assert.ok(decision.matched.every((id) => activeIds.includes(id)));
      assert.ok(decision.shadowMatches.every((id) => shadowIds.includes(id)));
      assert.equal(decision.rule === null, decision.action === null);
      if (decision.rule !== null) assert.ok(decision.matched.includes(decision.rule));
    }), { numRuns: 3000 });
  });
});

// A micro-benchmark, not a timed test: it prints what a decision costs so that a regression is visible in the log.
describe('rule benchmark', () => {
  test('prints nanoseconds per evaluation and per decision', () => {
    const rule = compiled('block if :amount_usd: > 5000 and :card_country: != :ip_country:');
    const ruleSet = compiledSet(storefrontRules);
    const inputs: RuleInput[] = [
      { amount_usd: 6000, card_country: 'US', ip_country: 'FR', risk_score: 20, email: 'a@b.example', email_domain: 'b.example', card_payments_1h: 1 },
      { amount_usd: 50, card_country: 'US', ip_country: 'US', risk_score: 70, email: 'x@mailinator.com', card_brand: 'visa', hour_of_day: 3 },
      { amount_usd: 13.37, card_country: 'GB' },
    ];
    // The results go into a sink that is printed, so that the work cannot be optimised away.
    let sink = 0;
    const measure = (label: string, iterations: number, run: (i: number) => unknown): void => {
      for (let i = 0; i < 10_000; i += 1) sink += run(i) === undefined ? 0 : 1;
      const started = process.hrtime.bigint();
      for (let i = 0; i < iterations; i += 1) sink += run(i) === undefined ? 0 : 1;
      const elapsed = Number(process.hrtime.bigint() - started);
      console.log(`rules benchmark: ${label}: ${(elapsed / iterations).toFixed(0)} ns per call (${iterations} calls)`);
    };
    const input = (i: number): RuleInput => inputs[i % inputs.length] ?? {};
    const prepared = inputs.map((each) => prepareInput(each, rule.slots));
    measure('one compiled rule on a prepared input', 2_000_000, (i) => rule.test(prepared[i % prepared.length] ?? []));
    measure('evaluate(rule, input)', 500_000, (i) => evaluate(rule, input(i)));
    measure(`decide(${ruleSet.rules.length} rules, input)`, 200_000, (i) => decide(ruleSet, input(i)));
    measure('compileRule (parse, check, compile)', 20_000, () => compileRule(storefrontRules[6]?.text ?? ''));
    console.log(`rules benchmark: sink ${sink}`);
  });
});
