import { CofferError } from '../domain/errors.ts';
import { escapeHtml } from '../platform/html.ts';
import type { CheckoutCollected, CheckoutConsentCollection, CheckoutCustomField, CheckoutCustomText, CheckoutSessionRow, CheckoutSubmitType } from '../store/database.ts';

/**
 * What a Checkout Session's page says besides the order (decision 0059): the pay button's verb (`submit_type`), the
 * merchant's messages by place (`custom_text`), and what the shopper is asked to consent to (`consent_collection`).
 * A message is plain text, in which `[words](https://…)` is a link, as Stripe's custom text takes Markdown links;
 * nothing else in it is markup.
 */
export interface PresentationParams {
  submit_type?: CheckoutSubmitType;
  custom_text?: Partial<Record<keyof CheckoutCustomText, { message: string } | ''>>;
  consent_collection?: CheckoutConsentCollection;
  custom_fields?: CheckoutCustomField[];
}

// An address may hold one level of brackets (`https://en.wikipedia.org/wiki/Tea_(meal)`).
const linkPattern = /\[([^\]\n]{1,200})\]\(((?:[^()\s]|\([^()\s]*\)){1,2048})\)/g;

/** A link of a message goes only to an https address: anything else (a script, a page of the shopper's own) is refused. */
function safeLink(address: string): URL | undefined {
  try {
    const url = new URL(address);
    return url.protocol === 'https:' && url.username === '' && url.password === '' ? url : undefined;
  } catch {
    return undefined;
  }
}

/** A message as the page shows it: escaped, with its `[words](https://…)` as links that open apart. */
export function messageHtml(message: string): string {
  let html = '';
  let from = 0;
  for (const match of message.matchAll(linkPattern)) {
    const url = safeLink(match[2] ?? '');
    if (url === undefined) continue;
    html += escapeHtml(message.slice(from, match.index));
    html += `<a href="${escapeHtml(url.href)}" target="_blank" rel="noopener noreferrer">${escapeHtml(match[1] ?? '')}</a>`;
    from = (match.index ?? 0) + match[0].length;
  }
  return html + escapeHtml(message.slice(from));
}

/**
 * The session's presentation, checked: a link that is not https is refused, a message for a part the page does not
 * show is refused (a shipping address message without shipping address collection, terms of service text without
 * terms to accept), and terms to accept need their text, since Coffer keeps no terms of service address of the
 * merchant's: the text carries the link. `''` (Stripe's way to leave a message unset) is no message.
 */
export function presentationOf(params: PresentationParams, shipsGoods: boolean): {
  custom_text: CheckoutCustomText | null; consent_collection: CheckoutConsentCollection | null; submit_type: CheckoutSubmitType | null; custom_fields: CheckoutCustomField[] | null;
} {
  const customText: CheckoutCustomText = {};
  for (const [place, value] of Object.entries(params.custom_text ?? {}) as Array<[keyof CheckoutCustomText, { message: string } | '']>) {
    if (value === '') continue;
    const message = value.message.trim();
    if (message === '') throw new CofferError('parameter_invalid', `custom_text[${place}][message] is empty.`, { param: `custom_text[${place}][message]` });
    for (const match of message.matchAll(linkPattern)) {
      if (safeLink(match[2] ?? '') === undefined) {
        throw new CofferError('parameter_invalid', `custom_text[${place}][message] links to ${match[2] ?? ''}: a link in a message must be an https URL.`, { param: `custom_text[${place}][message]` });
      }
    }
    customText[place] = { message };
  }
  const consent = params.consent_collection;
  if (customText.shipping_address !== undefined && !shipsGoods) {
    throw new CofferError('parameter_invalid', 'custom_text[shipping_address] is shown with the shipping address, which this session does not ask for: give shipping_address_collection too.',
      { param: 'custom_text[shipping_address]' });
  }
  if (consent?.terms_of_service === 'required' && customText.terms_of_service_acceptance === undefined) {
    throw new CofferError('parameter_missing', 'consent_collection[terms_of_service]=required needs custom_text[terms_of_service_acceptance][message]: the text the shopper agrees to, '
      + 'with a link to your terms ([Terms of Service](https://…)).', { param: 'custom_text[terms_of_service_acceptance]' });
  }
  if (customText.terms_of_service_acceptance !== undefined && consent?.terms_of_service !== 'required') {
    throw new CofferError('parameter_invalid', 'custom_text[terms_of_service_acceptance] is shown only when the shopper must accept terms: give consent_collection[terms_of_service]=required too.',
      { param: 'custom_text[terms_of_service_acceptance]' });
  }
  return {
    custom_text: Object.keys(customText).length === 0 ? null : customText,
    consent_collection: consent === undefined ? null : consent,
    submit_type: params.submit_type ?? null,
    custom_fields: customFieldsOf(params.custom_fields),
  };
}

/**
 * The merchant's own fields, checked (decision 0060): keys unique; each field's settings only for its type (a
 * dropdown's options with a dropdown); a dropdown's values unique and its default one of them; a length's bounds in
 * order and its default within them (digits only for a numeric field).
 */
function customFieldsOf(fields: CheckoutCustomField[] | undefined): CheckoutCustomField[] | null {
  if (fields === undefined || fields.length === 0) return null;
  const keys = new Set<string>();
  return fields.map((field, index) => {
    const at = `custom_fields[${index}]`;
    if (keys.has(field.key)) throw new CofferError('parameter_invalid', `${at}[key] is ${field.key}, the key of another field: each field needs its own.`, { param: `${at}[key]` });
    keys.add(field.key);
    for (const kind of ['dropdown', 'numeric', 'text'] as const) {
      if (kind !== field.type && field[kind] !== undefined) {
        throw new CofferError('parameter_invalid', `${at}[${kind}] is for a field of type ${kind}; this one is ${field.type}.`, { param: `${at}[${kind}]` });
      }
    }
    const label = field.label.custom.trim();
    if (label === '') throw new CofferError('parameter_invalid', `${at}[label][custom] is empty.`, { param: `${at}[label][custom]` });
    const kept: CheckoutCustomField = { key: field.key, label: { type: 'custom', custom: label }, type: field.type, optional: field.optional === true };
    if (field.type === 'dropdown') {
      if (field.dropdown === undefined) throw new CofferError('parameter_missing', `${at}[dropdown][options] is needed for a dropdown field.`, { param: `${at}[dropdown]` });
      const values = field.dropdown.options.map((option) => option.value);
      const repeated = values.find((value, place) => values.indexOf(value) !== place);
      if (repeated !== undefined) throw new CofferError('parameter_invalid', `${at}[dropdown][options] has the value ${repeated} twice: each option needs its own.`, { param: `${at}[dropdown][options]` });
      const preset = field.dropdown.default_value;
      if (preset !== undefined && !values.includes(preset)) {
        throw new CofferError('parameter_invalid', `${at}[dropdown][default_value] is ${preset}, which is not the value of one of its options.`, { param: `${at}[dropdown][default_value]` });
      }
      kept.dropdown = { options: field.dropdown.options.map((option) => ({ label: option.label.trim() || option.value, value: option.value })), ...(preset === undefined ? {} : { default_value: preset }) };
    } else {
      const bounds = field[field.type] ?? {};
      const { minimum_length: min, maximum_length: max, default_value: preset } = bounds;
      if (min !== undefined && max !== undefined && min > max) {
        throw new CofferError('parameter_invalid', `${at}[${field.type}][minimum_length] (${min}) is above its maximum_length (${max}).`, { param: `${at}[${field.type}][minimum_length]` });
      }
      if (preset !== undefined && preset !== '' && ((min !== undefined && preset.length < min) || preset.length > (max ?? 255) || (field.type === 'numeric' && !/^\d+$/.test(preset)))) {
        throw new CofferError('parameter_invalid', `${at}[${field.type}][default_value] is not a value the field takes${field.type === 'numeric' ? ' (digits only)' : ''}, within its lengths.`,
          { param: `${at}[${field.type}][default_value]` });
      }
      kept[field.type] = { ...(min === undefined ? {} : { minimum_length: min }), ...(max === undefined ? {} : { maximum_length: max }), ...(preset === undefined || preset === '' ? {} : { default_value: preset }) };
    }
    return kept;
  });
}

/**
 * The custom fields as Stripe shows them: each with its settings, and once the session is paid, the `value` the
 * shopper gave (null for an optional field left empty). `withValues` is false for a payment link, whose fields have none.
 */
export function customFieldObjects(fields: CheckoutCustomField[] | null | undefined, values: Record<string, string> | undefined, withValues: boolean): Array<Record<string, unknown>> {
  return (fields ?? []).map((field) => {
    const value = withValues ? { value: values?.[field.key] ?? null } : {};
    const bounds = (given: CheckoutCustomField['text']) => ({ default_value: given?.default_value ?? null, maximum_length: given?.maximum_length ?? null, minimum_length: given?.minimum_length ?? null, ...value });
    return {
      dropdown: field.type === 'dropdown' ? { default_value: field.dropdown?.default_value ?? null, options: field.dropdown?.options ?? [], ...value } : null,
      key: field.key, label: field.label, numeric: field.type === 'numeric' ? bounds(field.numeric) : null,
      optional: field.optional === true, text: field.type === 'text' ? bounds(field.text) : null, type: field.type,
    };
  });
}

/** The string key of the pay button's words for the session's `submit_type`. */
export function payWordsKey(session: Pick<CheckoutSessionRow, 'submit_type'>): 'pay' | 'book' | 'donate' {
  return session.submit_type === 'book' || session.submit_type === 'donate' ? session.submit_type : 'pay';
}

/** Stripe's `consent` of a completed session that asked for any: what the shopper accepted with the paying try. */
export function consentOf(session: Pick<CheckoutSessionRow, 'consent_collection' | 'status'>, collected: CheckoutCollected | null): Record<string, unknown> | null {
  if (session.consent_collection === null || session.status !== 'complete') return null;
  return { promotions: collected?.promotions ?? null, terms_of_service: collected?.terms_of_service ?? null };
}

/** Stripe's `custom_text` object: each place's message, or null (a message given as `''` is none). */
export function customTextObject(text: PresentationParams['custom_text'] | CheckoutCustomText | null | undefined): Record<keyof CheckoutCustomText, { message: string } | null> {
  const at = (place: keyof CheckoutCustomText) => {
    const given = text?.[place];
    return given === undefined || given === '' ? null : { message: given.message.trim() };
  };
  return { after_submit: at('after_submit'), shipping_address: at('shipping_address'), submit: at('submit'), terms_of_service_acceptance: at('terms_of_service_acceptance') };
}

/** Stripe's `consent_collection` object, as given, with Stripe's `none` where a consent was not asked; null when none was given. */
export function consentCollectionObject(consent: CheckoutConsentCollection | null | undefined): Record<string, unknown> | null {
  if (consent === null || consent === undefined) return null;
  return { payment_method_reuse_agreement: consent.payment_method_reuse_agreement ?? null, promotions: consent.promotions ?? 'none', terms_of_service: consent.terms_of_service ?? 'none' };
}
