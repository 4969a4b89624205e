import type { RuleAction, RuleDefinition, RuleInput } from '../../src/risk/rules/index.ts';

/**
 * Payments with the decision a rule set must reach for them: the action, the deciding rule, every active rule that
 * fired (list order) and every shadow rule that fired. Most cases run against one storefront rule set, written in
 * an order that does not follow precedence, so that precedence and first-match are both exercised; the rest use
 * small rule sets made for one point of the semantics.
 */
export interface RuleFixture {
  readonly name: string;
  readonly rules: readonly RuleDefinition[];
  readonly input: RuleInput;
  readonly expected: {
    readonly action: RuleAction | null;
    readonly rule: string | null;
    readonly matched: readonly string[];
    readonly shadowMatches: readonly string[];
  };
}

const active = (id: string, text: string): RuleDefinition => ({ id, text, mode: 'active' });
const shadow = (id: string, text: string): RuleDefinition => ({ id, text, mode: 'shadow' });

export const storefrontRules: readonly RuleDefinition[] = [
  active('review_high_score', 'review if :risk_score: >= 65'),
  active('block_sanctioned_ip', "block if :ip_country: IN ('KP', 'IR', 'SY')"),
  active('block_big_foreign', 'block if :amount_usd: > 5000 and :card_country: != :ip_country:'),
  active('allow_staff', "allow if :email_domain: = 'coffer.dev' and :risk_score: < 90"),
  active('step_up_foreign', 'request_step_up if :card_country: != :ip_country: and :amount_usd: >= 100'),
  active('block_card_velocity', 'block if :card_payments_1h: >= 5 or :card_declined_payments_24h: > 3'),
  active('review_disposable_email', "review if :email: ends_with '@mailinator.com' or :email_domain: IN ('guerrillamail.com', 'yopmail.com')"),
  shadow('shadow_unionpay_large', "block if :card_brand: = 'unionpay' and :amount_usd: >= 1000"),
  shadow('shadow_night_repeat', 'review if :hour_of_day: < 5 and :customer_payments_24h: >= 3'),
  active('block_test_amount', 'block if :amount_usd: = 13.37'),
];

/** A payment no storefront rule objects to. */
const clean: RuleInput = {
  amount_usd: 50, card_country: 'US', ip_country: 'US', risk_score: 10, email: 'ann@shop.example', email_domain: 'shop.example',
  card_payments_1h: 0, card_declined_payments_24h: 0, card_brand: 'visa', hour_of_day: 14, customer_payments_24h: 1,
};
const staff: RuleInput = { ...clean, email: 'bob@coffer.dev', email_domain: 'coffer.dev' };

function decided(action: RuleAction | null, rule: string | null, matched: readonly string[] = rule === null ? [] : [rule], shadowMatches: readonly string[] = []) {
  return { action, rule, matched, shadowMatches };
}

function storefront(name: string, input: RuleInput, expected: RuleFixture['expected']): RuleFixture {
  return { name, rules: storefrontRules, input, expected };
}

const storefrontFixtures: RuleFixture[] = [
  storefront('a clean payment fires nothing', clean, decided(null, null)),
  storefront('a high score is reviewed', { ...clean, risk_score: 70 }, decided('review', 'review_high_score')),
  storefront('>= includes its bound: a score of exactly 65 is reviewed', { ...clean, risk_score: 65 }, decided('review', 'review_high_score')),
  storefront('a score just under the bound is not', { ...clean, risk_score: 64.99 }, decided(null, null)),
  storefront('block beats review', { ...clean, risk_score: 70, ip_country: 'KP' },
    decided('block', 'block_sanctioned_ip', ['review_high_score', 'block_sanctioned_ip'])),
  storefront('countries ignore case: kp is KP', { ...clean, ip_country: 'kp', card_country: 'kp' }, decided('block', 'block_sanctioned_ip')),
  storefront('step-up beats block: a large foreign payment is stepped up',
    { ...clean, amount_usd: 6000, card_country: 'US', ip_country: 'FR' },
    decided('request_step_up', 'step_up_foreign', ['block_big_foreign', 'step_up_foreign'])),
  storefront('a foreign payment under 100 USD fires nothing', { ...clean, amount_usd: 99.99, ip_country: 'FR' }, decided(null, null)),
  storefront('a foreign payment of exactly 100 USD is stepped up', { ...clean, amount_usd: 100, ip_country: 'FR' }, decided('request_step_up', 'step_up_foreign')),
  storefront('attribute against attribute ignores case: us = US', { ...clean, amount_usd: 6000, card_country: 'us', ip_country: 'US' }, decided(null, null)),
  storefront('a missing IP country stops both country-mismatch rules', { ...clean, amount_usd: 6000, ip_country: undefined }, decided(null, null)),
  storefront('null is missing too', { ...clean, amount_usd: 6000, ip_country: null }, decided(null, null)),
  storefront('allow beats review', { ...staff, risk_score: 70 }, decided('allow', 'allow_staff', ['review_high_score', 'allow_staff'])),
  storefront('the allow rule needs a score under 90', { ...staff, risk_score: 95 }, decided('review', 'review_high_score')),
  storefront('step-up beats allow', { ...staff, amount_usd: 200, ip_country: 'DE' },
    decided('request_step_up', 'step_up_foreign', ['allow_staff', 'step_up_foreign'])),
  storefront('email domains ignore case', { ...staff, email_domain: 'COFFER.DEV' }, decided('allow', 'allow_staff')),
  storefront('without a model score (degraded), neither allow nor review fires', { ...staff, risk_score: undefined }, decided(null, null)),
  storefront('card velocity blocks at 5 payments an hour', { ...clean, card_payments_1h: 5 }, decided('block', 'block_card_velocity')),
  storefront('4 an hour is allowed through', { ...clean, card_payments_1h: 4 }, decided(null, null)),
  storefront('declines alone block through or', { ...clean, card_payments_1h: 4, card_declined_payments_24h: 4 }, decided('block', 'block_card_velocity')),
  storefront('a rule whose attribute is missing does not fire, even where another part of it holds (4 declines, hourly count missing)',
    { ...clean, card_payments_1h: undefined, card_declined_payments_24h: 4 }, decided(null, null)),
  storefront('unknown or false is unknown: the rule does not fire', { ...clean, card_payments_1h: undefined, card_declined_payments_24h: 1 }, decided(null, null)),
  storefront('ends_with on an email ignores case', { ...clean, email: 'Eve@MAILINATOR.com' }, decided('review', 'review_disposable_email')),
  storefront('an email domain in the list, with the email itself missing: the rule names :email:, so it does not fire', { ...clean, email: undefined, email_domain: 'yopmail.com' },
    decided(null, null)),
  storefront('first match within an action: two review rules, the first in the list decides',
    { ...clean, risk_score: 80, email_domain: 'guerrillamail.com' }, decided('review', 'review_high_score', ['review_high_score', 'review_disposable_email'])),
  storefront('first match within an action: two block rules, the first in the list decides', { ...clean, ip_country: 'IR', card_country: 'IR', card_payments_1h: 9 },
    decided('block', 'block_sanctioned_ip', ['block_sanctioned_ip', 'block_card_velocity'])),
  storefront('a shadow rule never decides', { ...clean, card_brand: 'unionpay', amount_usd: 1500 }, decided(null, null, [], ['shadow_unionpay_large'])),
  storefront('brands ignore case in shadow rules too', { ...clean, card_brand: 'UnionPay', amount_usd: 1500 }, decided(null, null, [], ['shadow_unionpay_large'])),
  storefront('a shadow match beside an active decision', { ...clean, card_brand: 'unionpay', amount_usd: 1500, risk_score: 80 },
    decided('review', 'review_high_score', ['review_high_score'], ['shadow_unionpay_large'])),
  storefront('both shadow rules, reported in list order', {
    ...clean, card_brand: 'unionpay', amount_usd: 2000, hour_of_day: 3, customer_payments_24h: 3,
  }, decided(null, null, [], ['shadow_unionpay_large', 'shadow_night_repeat'])),
  storefront('decimal equality: 13.37 written in the rule equals 13.37', { ...clean, amount_usd: 13.37 }, decided('block', 'block_test_amount')),
  storefront('decimal equality: an amount computed as 1337 / 100 is the same number', { ...clean, amount_usd: 1337 / 100 }, decided('block', 'block_test_amount')),
  storefront('decimal equality is exact: 13.370001 is not 13.37', { ...clean, amount_usd: 13.370001 }, decided(null, null)),
];

function single(name: string, text: string, input: RuleInput, fires: boolean): RuleFixture {
  const rule = active('rule_under_test', text);
  const action = fires ? (text.slice(0, text.indexOf(' ')).toLowerCase() as RuleAction) : null;
  return { name, rules: [rule], input, expected: decided(action, fires ? rule.id : null) };
}

const semanticsFixtures: RuleFixture[] = [
  single('not unknown is unknown: a missing country does not make "not =" fire', "block if not :card_country: = 'US'", {}, false),
  single('not false is true', "block if not :card_country: = 'US'", { card_country: 'FR' }, true),
  single('!= on a missing attribute does not fire', "block if :card_country: != 'US'", { amount_usd: 10 }, false),
  single('a missing attribute stops the rule even under not(...)',
    "block if not (:amount_usd: > 100 and :ip_country: = 'US')", { amount_usd: 50 }, false),
  single('not(...) fires once every attribute is present', "block if not (:amount_usd: > 100 and :ip_country: = 'US')", { amount_usd: 50, ip_country: 'FR' }, true),
  single('true and unknown is unknown, so not(...) stays unknown', "block if not (:amount_usd: > 100 and :ip_country: = 'US')", { amount_usd: 500 }, false),
  single('or does not rescue a rule with a missing attribute', "block if :card_country: != 'US' or :amount_usd: > 1000", { amount_usd: 2000 }, false),
  single('or fires when every attribute is present and one side holds', "block if :card_country: != 'US' or :amount_usd: > 1000", { card_country: 'US', amount_usd: 2000 }, true),
  single('NOT IN on a missing attribute does not fire', "block if :card_country: NOT IN ('US', 'CA')", {}, false),
  single('NOT IN fires outside the list', "block if :card_country: NOT IN ('US', 'CA')", { card_country: 'fr' }, true),
  single('NOT IN ignores case for countries', "block if :card_country: NOT IN ('US', 'CA')", { card_country: 'ca' }, false),
  single('is_missing is the explicit test of absence', 'review if is_missing(:ip_country:)', { amount_usd: 10 }, true),
  single('is_missing is false when present', 'review if is_missing(:ip_country:)', { ip_country: 'US' }, false),
  single('not is_missing is never unknown', 'review if not is_missing(:device_id:) and :device_payments_24h: > 10', { device_id: 'dev_1', device_payments_24h: 11 }, true),
  single('billing and shipping countries compared with each other', 'review if :billing_country: != :shipping_country:', { billing_country: 'US', shipping_country: 'MX' }, true),
  single('attribute against attribute with one side missing does not fire', 'review if :billing_country: != :shipping_country:', { billing_country: 'US' }, false),
  single('card fingerprints compare exactly (case matters)', "block if :card_fingerprint: = 'Xt5EWLLDS7FJjR1c'", { card_fingerprint: 'xt5ewllds7fjjr1c' }, false),
  single('card fingerprints: exact match', "block if :card_fingerprint: = 'Xt5EWLLDS7FJjR1c'", { card_fingerprint: 'Xt5EWLLDS7FJjR1c' }, true),
  single('a case-insensitive attribute against an exact one ignores case', 'review if :email: = :customer_id:', { email: 'A@B.example', customer_id: 'a@b.EXAMPLE' }, true),
  single('card BINs are text, in a list', "block if :card_bin: IN ('424242', '400000')", { card_bin: '424242' }, true),
  single('integer amounts in minor units', 'block if :amount: = 100000', { amount: 100_000 }, true),
  single('floating point is IEEE: 0.1 + 0.2 is not 0.3', 'block if :amount_usd: = 0.3', { amount_usd: 0.1 + 0.2 }, false),
  single('but 3 / 10 is', 'block if :amount_usd: = 0.3', { amount_usd: 3 / 10 }, true),
  single('100.00 equals 100', 'block if :amount_usd: = 100.00', { amount_usd: 100 }, true),
  single('negative literals', 'block if :risk_score: > -1', { risk_score: 0 }, true),
  single('NaN counts as missing', 'block if not :risk_score: < 50', { risk_score: Number.NaN }, false),
  single('a boolean attribute alone is a condition', 'allow if not :livemode:', { livemode: false }, true),
  single('a missing boolean is unknown', 'allow if not :livemode:', {}, false),
  single('booleans compare with = and !=', 'allow if :livemode: = false', { livemode: false }, true),
  single('starts_with', "review if :ip_address: starts_with '10.'", { ip_address: '10.1.2.3' }, true),
  single('contains', "review if :email: contains '+'", { email: 'ann+shop@example.com' }, true),
  single('keywords ignore case', "BLOCK IF :amount_usd: > 10 AND :card_country: In ('us') Or NOT :livemode:", { amount_usd: 20, card_country: 'US', livemode: true }, true),
  single('and binds tighter than or (or taken)', "block if :card_country: = 'US' or :ip_country: = 'FR' and :amount_usd: > 1000",
    { card_country: 'US', ip_country: 'DE', amount_usd: 10 }, true),
  single('and binds tighter than or (neither side)', "block if :card_country: = 'US' or :ip_country: = 'FR' and :amount_usd: > 1000",
    { card_country: 'FR', ip_country: 'FR', amount_usd: 10 }, false),
  single('parentheses override', "block if (:card_country: = 'US' or :ip_country: = 'FR') and :amount_usd: > 1000",
    { card_country: 'US', ip_country: 'DE', amount_usd: 10 }, false),
  single('a string with an escaped quote', "review if :email: = 'o\\'brien@example.com'", { email: "O'Brien@example.com" }, true),
  single('rules across lines', "block if :amount_usd: > 5000\n  and :card_country: != :ip_country:", { amount_usd: 6000, card_country: 'US', ip_country: 'GB' }, true),
  single('velocity over 7 days by IP address', 'review if :ip_address_payments_7d: > 50', { ip_address_payments_7d: 51 }, true),
];

const precedenceFixtures: RuleFixture[] = [
  {
    name: 'all four actions fire: step-up decides whatever the order',
    rules: [active('r_review', 'review if :amount_usd: > 1'), active('r_block', 'block if :amount_usd: > 1'),
      active('r_allow', 'allow if :amount_usd: > 1'), active('r_step_up', 'request_step_up if :amount_usd: > 1')],
    input: { amount_usd: 10 },
    expected: decided('request_step_up', 'r_step_up', ['r_review', 'r_block', 'r_allow', 'r_step_up']),
  },
  {
    name: 'allow beats block and review',
    rules: [active('r_review', 'review if :amount_usd: > 1'), active('r_block', 'block if :amount_usd: > 1'),
      active('r_allow', 'allow if :amount_usd: > 1'), active('r_step_up', 'request_step_up if :amount_usd: > 100')],
    input: { amount_usd: 10 },
    expected: decided('allow', 'r_allow', ['r_review', 'r_block', 'r_allow']),
  },
  {
    name: 'a shadow step-up rule does not take over an active review',
    rules: [shadow('s_step_up', 'request_step_up if :amount_usd: > 1'), active('r_review', 'review if :amount_usd: > 1')],
    input: { amount_usd: 10 },
    expected: decided('review', 'r_review', ['r_review'], ['s_step_up']),
  },
  { name: 'an empty rule set decides nothing', rules: [], input: { amount_usd: 10 }, expected: decided(null, null) },
];

export const ruleFixtures: readonly RuleFixture[] = [...storefrontFixtures, ...semanticsFixtures, ...precedenceFixtures];
