import { assert, assertNever } from '../../platform/assert.ts';
import {
  attributeSlot, isRuleAttributeName, ruleAttributeNames, ruleAttributes,
  type RuleAttribute, type RuleAttributeName, type RuleInput, type RuleScalar,
} from './rule-attributes.ts';
import { checkAttributeNames, checkRule } from './rule-checker.ts';
import { sortErrors, type RuleError } from './rule-errors.ts';
import { parseRule } from './rule-parser.ts';
import type { AttributeOperand, CompareOperator, RuleAction, RuleCondition, RuleOperand, RuleTree, TextOperator } from './rule-syntax.ts';

/**
 * Compiles a checked rule into a tree of closures, once; evaluating it then costs a few property reads and
 * comparisons. Conditions have three values: true, false and unknown (`undefined` inside). Any comparison that
 * reads a missing attribute is unknown; `not` keeps unknown unknown; `and` is false if any side is false, else
 * unknown if any side is unknown; `or` is true if any side is true, else unknown if any is. On top of that, a rule
 * whose attribute is missing does not fire: if any attribute the rule compares is missing, the rule is unknown,
 * even where another part of an `or` holds (an analyst reads `block if A or B` as needing what it names).
 * `is_missing(:name:)` is the one test of absence, and it is always true or false.
 *
 * Strings compare exactly (by UTF-16 code units), except that a comparison involving a case-insensitive attribute
 * (see the catalogue) compares both sides in lower case. Numbers compare as IEEE doubles: `19.99` written in a
 * rule equals an amount computed as `1999 / 100`, which is the same nearest double.
 */
export type RuleTruth = 'true' | 'false' | 'unknown';

/** A payment's attributes by slot, normalised: missing ones `undefined`, case-insensitive strings lower-cased. */
export type PreparedInput = ReadonlyArray<RuleScalar | undefined>;

/** A compiled condition: `undefined` is unknown. */
export type RuleTest = (input: PreparedInput) => boolean | undefined;

export interface CompiledRule {
  readonly text: string;
  readonly action: RuleAction;
  readonly tree: RuleTree;
  /** The attributes the rule reads, each once, in order of first use. */
  readonly attributes: readonly RuleAttributeName[];
  /** Their slots in a prepared input, parallel to `attributes`. */
  readonly slots: readonly number[];
  /** The condition over a prepared input (see `prepareInput`); `evaluate` is the checked way in. */
  readonly test: RuleTest;
}

export type CompileResult =
  | { readonly ok: true; readonly rule: CompiledRule }
  | { readonly ok: false; readonly errors: readonly RuleError[] };

export interface RuleEvaluation {
  readonly fired: boolean;
  readonly truth: RuleTruth;
  /** Attributes the rule reads that the input lacks: why a rule did not fire when its truth is unknown. */
  readonly missing: readonly RuleAttributeName[];
}

/** Parses, checks and compiles a rule; on failure, every problem found, in text order. */
export function compileRule(text: string): CompileResult {
  const parsed = parseRule(text);
  if (!parsed.ok) return { ok: false, errors: sortErrors([...parsed.errors, ...checkAttributeNames(text, parsed.attributes)]) };
  const errors = checkRule(text, parsed.tree);
  if (errors.length > 0) return { ok: false, errors: sortErrors(errors) };
  const attributes = [...new Set(attributesOf(parsed.tree.condition))];
  // A rule whose attribute is missing does not fire: every attribute it compares (not merely asks `is_missing` of)
  // must be present, whatever the rest of the condition says.
  const required = [...new Set(attributesOf(parsed.tree.condition, true))].map(attributeSlot);
  const condition = compileCondition(parsed.tree.condition);
  const test: RuleTest = required.length === 0 ? condition : (input) => (required.some((slot) => input[slot] === undefined) ? undefined : condition(input));
  return {
    ok: true,
    rule: { text, action: parsed.tree.action, tree: parsed.tree, attributes, slots: attributes.map(attributeSlot), test },
  };
}

/** Whether the rule fires for these attributes, its three-valued truth, and what it missed. */
export function evaluate(rule: CompiledRule, input: RuleInput): RuleEvaluation {
  const prepared = prepareInput(input, rule.slots);
  const truth = rule.test(prepared);
  const missing = rule.attributes.filter((_, index) => prepared[rule.slots[index] ?? -1] === undefined);
  return { fired: truth === true, truth: truth === undefined ? 'unknown' : truth ? 'true' : 'false', missing };
}

const slotAttributes: readonly RuleAttribute[] = ruleAttributeNames.map((name) => ruleAttributes[name]);

/**
 * Reads the attributes in `slots` from the input, once per decision: a value of the wrong type, NaN or null counts
 * as missing, and case-insensitive strings are lower-cased here so that rules compare them without allocating.
 */
export function prepareInput(input: RuleInput, slots: readonly number[]): PreparedInput {
  const prepared = new Array<RuleScalar | undefined>(slotAttributes.length);
  const source: Readonly<Record<string, unknown>> = typeof input === 'object' && input !== null ? input : {};
  for (const slot of slots) {
    const attribute = slotAttributes[slot];
    const name = ruleAttributeNames[slot];
    if (attribute === undefined || name === undefined) continue;
    prepared[slot] = normalise(attribute, source[name]);
  }
  return prepared;
}

function normalise(attribute: RuleAttribute, raw: unknown): RuleScalar | undefined {
  switch (attribute.type) {
    case 'number':
      return typeof raw === 'number' && !Number.isNaN(raw) ? raw : undefined;
    case 'string':
      if (typeof raw !== 'string') return undefined;
      return attribute.caseInsensitive ? raw.toLowerCase() : raw;
    case 'boolean':
      return typeof raw === 'boolean' ? raw : undefined;
    default:
      return assertNever(attribute.type, 'attribute type');
  }
}

function attributesOf(node: RuleCondition, compared = false): RuleAttributeName[] {
  switch (node.kind) {
    case 'or':
    case 'and':
      return node.operands.flatMap((operand) => attributesOf(operand, compared));
    case 'not':
      return attributesOf(node.operand, compared);
    case 'compare':
    case 'text':
      return namesOf([node.left, node.right]);
    case 'in':
      return namesOf([node.left]);
    case 'is_missing':
      return compared ? [] : namesOf([node.attribute]);
    case 'value':
      return namesOf([node.operand]);
    default:
      return assertNever(node, 'rule condition');
  }
}

function namesOf(operands: readonly RuleOperand[]): RuleAttributeName[] {
  return operands.filter((operand): operand is AttributeOperand => operand.kind === 'attribute').map(checkedName);
}

/** The name of an attribute the checker accepted. */
function checkedName(operand: AttributeOperand): RuleAttributeName {
  assert(isRuleAttributeName(operand.name), `the checker accepted only known attributes, not ${operand.name}`);
  return operand.name;
}

function compileCondition(node: RuleCondition): RuleTest {
  switch (node.kind) {
    case 'or':
      return anyOf(node.operands.map(compileCondition));
    case 'and':
      return allOf(node.operands.map(compileCondition));
    case 'not': {
      const operand = compileCondition(node.operand);
      return (input) => {
        const truth = operand(input);
        return truth === undefined ? undefined : !truth;
      };
    }
    case 'is_missing': {
      const slot = attributeSlot(checkedName(node.attribute));
      return (input) => input[slot] === undefined;
    }
    case 'value': {
      const read = reader(node.operand, false);
      return (input) => read(input) as boolean | undefined;
    }
    case 'compare':
      return compileComparison(node.left, node.right, comparisons[node.operator]);
    case 'text':
      return compileComparison(node.left, node.right, textComparisons[node.operator]);
    case 'in':
      return compileList(node.left, node.items, node.negated);
    default:
      return assertNever(node, 'rule condition');
  }
}

function allOf(operands: readonly RuleTest[]): RuleTest {
  return (input) => {
    let unknown = false;
    for (const operand of operands) {
      const truth = operand(input);
      if (truth === false) return false;
      if (truth === undefined) unknown = true;
    }
    return unknown ? undefined : true;
  };
}

function anyOf(operands: readonly RuleTest[]): RuleTest {
  return (input) => {
    let unknown = false;
    for (const operand of operands) {
      const truth = operand(input);
      if (truth === true) return true;
      if (truth === undefined) unknown = true;
    }
    return unknown ? undefined : false;
  };
}

type Comparison = (left: RuleScalar, right: RuleScalar) => boolean;

// The checker lets ordering and text operators see only numbers and strings respectively, hence the casts.
const comparisons: Record<CompareOperator, Comparison> = {
  '=': (left, right) => left === right,
  '!=': (left, right) => left !== right,
  '<': (left, right) => (left as number) < (right as number),
  '<=': (left, right) => (left as number) <= (right as number),
  '>': (left, right) => (left as number) > (right as number),
  '>=': (left, right) => (left as number) >= (right as number),
};

const textComparisons: Record<TextOperator, Comparison> = {
  starts_with: (left, right) => (left as string).startsWith(right as string),
  ends_with: (left, right) => (left as string).endsWith(right as string),
  contains: (left, right) => (left as string).includes(right as string),
};

/** Whether a comparison ignores case: when either side is a case-insensitive attribute. */
function foldsCase(operands: readonly RuleOperand[]): boolean {
  return operands.some((operand) => operand.kind === 'attribute' && attributeOf(operand).caseInsensitive);
}

function attributeOf(operand: AttributeOperand): RuleAttribute {
  return ruleAttributes[checkedName(operand)];
}

type Read = (input: PreparedInput) => RuleScalar | undefined;

/** Reads an operand; with `fold`, strings come out lower-case (prepared inputs already are, when case-insensitive). */
function reader(operand: RuleOperand, fold: boolean): Read {
  if (operand.kind !== 'attribute') {
    const value = literalValue(operand, fold);
    return () => value;
  }
  const slot = attributeSlot(checkedName(operand));
  const attribute = attributeOf(operand);
  if (fold && attribute.type === 'string' && !attribute.caseInsensitive) {
    return (input) => (input[slot] as string | undefined)?.toLowerCase();
  }
  return (input) => input[slot];
}

function literalValue(operand: Exclude<RuleOperand, AttributeOperand>, fold: boolean): RuleScalar {
  return fold && typeof operand.value === 'string' ? operand.value.toLowerCase() : operand.value;
}

function compileComparison(left: RuleOperand, right: RuleOperand, compare: Comparison): RuleTest {
  const fold = foldsCase([left, right]);
  // The common shape, an attribute against a value, reads its slot directly.
  const leftFoldsItself = left.kind === 'attribute' && fold && attributeOf(left).type === 'string' && !attributeOf(left).caseInsensitive;
  if (left.kind === 'attribute' && right.kind !== 'attribute' && !leftFoldsItself) {
    const slot = attributeSlot(checkedName(left));
    const value = literalValue(right, fold);
    return (input) => {
      const found = input[slot];
      return found === undefined ? undefined : compare(found, value);
    };
  }
  const readLeft = reader(left, fold);
  const readRight = reader(right, fold);
  return (input) => {
    const leftValue = readLeft(input);
    if (leftValue === undefined) return undefined;
    const rightValue = readRight(input);
    return rightValue === undefined ? undefined : compare(leftValue, rightValue);
  };
}

function compileList(left: RuleOperand, items: readonly RuleOperand[], negated: boolean): RuleTest {
  const fold = foldsCase([left]);
  const values = new Set(items.map((item) => (item.kind === 'attribute' ? undefined : literalValue(item, fold))));
  const read = reader(left, fold);
  return (input) => {
    const value = read(input);
    return value === undefined ? undefined : values.has(value) !== negated;
  };
}
