import type { CheckoutCollected, CheckoutSessionRow } from '../store/database.ts';
import { isCountry } from '../flows/checkout-sessions.ts';
import { escapeHtml } from '../platform/html.ts';
import { messageHtml } from './presentation.ts';
import { say, type Language, type StringKey } from './strings.ts';

/**
 * The addresses and phone number a Checkout Session asks the shopper for (decision 0051): the fields the page
 * shows, and the server's reading of what the page sends back. Each field is named `<part>.<field>`
 * (`shipping.line1`); the page sends them as they are, and nothing but these is read.
 */
type Part = 'shipping' | 'billing';
const addressFields = ['name', 'line1', 'line2', 'city', 'state', 'postal_code', 'country'] as const;
type AddressField = (typeof addressFields)[number];
const labels: Record<AddressField, StringKey> = {
  name: 'fullName', line1: 'addressLine1', line2: 'addressLine2', city: 'addressCity', state: 'addressState', postal_code: 'addressPostalCode', country: 'addressCountry',
};
const required: ReadonlySet<AddressField> = new Set(['name', 'line1', 'city', 'country']);
const autocomplete: Record<AddressField, string> = {
  name: 'name', line1: 'address-line1', line2: 'address-line2', city: 'address-level2', state: 'address-level1', postal_code: 'postal-code', country: 'country',
};
const maxLengths: Record<AddressField, number> = { name: 200, line1: 200, line2: 200, city: 200, state: 200, postal_code: 20, country: 2 };

let everyCountry: string[] | undefined;
function allCountries(): string[] {
  if (everyCountry === undefined) {
    const letters = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
    everyCountry = [...letters].flatMap((a) => [...letters].map((b) => `${a}${b}`)).filter(isCountry);
  }
  return everyCountry;
}

const regionNames: Record<Language, Intl.DisplayNames> = {
  en: new Intl.DisplayNames(['en'], { type: 'region' }),
  zh: new Intl.DisplayNames(['zh-CN'], { type: 'region' }),
};

function countryName(code: string, language: Language): string {
  return regionNames[language].of(code) ?? code;
}

/** The countries a part's address may be in: the session's shipping countries, or any for a billing address. */
function countriesFor(session: CheckoutSessionRow, part: Part): string[] {
  return part === 'shipping' ? session.shipping_countries ?? [] : allCountries();
}

/** ` value="…"` for a field the shopper filled in already (kept with the session), else nothing. */
function given(value: string | undefined): string {
  return value === undefined || value === '' ? '' : ` value="${escapeHtml(value)}"`;
}

function addressSection(session: CheckoutSessionRow, part: Part, language: Language): string {
  const t = (key: StringKey, vars?: Record<string, string>) => escapeHtml(say(language, key, vars));
  // What the shopper gave before leaving the page (WeChat's sign-in, a 3-D Secure challenge) is shown again.
  const kept = session.collected?.[part];
  const keptValue = (field: AddressField) => (field === 'name' ? kept?.name : kept?.address[field]);
  const fields = addressFields.map((field) => {
    const id = `${part}-${field.replace('_', '-')}`;
    const needed = required.has(field);
    const common = `id="${id}" data-detail="${part}.${field}" autocomplete="${part} ${autocomplete[field]}"${needed ? ` required data-missing="${t('fillIn', { field: say(language, labels[field]) })}"` : ''}`;
    if (field === 'country') {
      const countries = countriesFor(session, part).map((code) => [code, countryName(code, language)] as const).sort((a, b) => a[1].localeCompare(b[1], language === 'zh' ? 'zh-CN' : 'en'));
      const options = countries.map(([code, name]) => `<option value="${code}"${code === keptValue('country') ? ' selected' : ''}>${escapeHtml(name)}</option>`).join('');
      return `<label class="field" for="${id}">${t(labels[field])}</label><select class="text" ${common}>${countries.length === 1 ? '' : '<option value=""></option>'}${options}</select>`;
    }
    return `<label class="field" for="${id}">${t(labels[field])}</label><input class="text" type="text" maxlength="${maxLengths[field]}" ${common}${given(keptValue(field))}>`;
  }).join('\n');
  return `<fieldset class="details" data-part="${part}"><legend>${t(part === 'shipping' ? 'shippingAddress' : 'billingAddress')}</legend>\n${fields}\n</fieldset>`;
}

/**
 * Whether the page asks the shopper's email: whenever the merchant gave a Checkout Session none (its `customer_email`,
 * or its `customer`'s email: `merchantEmail`), as Stripe's Checkout does, so that a completed session always has
 * `customer_details.email` and its receipt an address (decision 0057).
 */
export function asksEmail(session: CheckoutSessionRow, merchantEmail: string | null): boolean {
  // A page made to pay an API PaymentIntent (`/pay/intent`) is not a Checkout Session: the merchant knows its shopper.
  return session.kind === 'checkout' && merchantEmail === null;
}

/**
 * The merchant's own fields (`custom_fields`, decision 0060), after what Coffer asks: each labelled as the merchant
 * labelled it (shown as given, in any language), required unless optional, and filled in with what the shopper gave
 * before (or the merchant's default). Named `custom.<key>`.
 */
function customFieldsSection(session: CheckoutSessionRow, language: Language): string {
  const fields = session.custom_fields ?? [];
  if (fields.length === 0) return '';
  const t = (key: StringKey, vars?: Record<string, string>) => escapeHtml(say(language, key, vars));
  const parts = fields.map((field) => {
    const id = `custom-${field.key}`;
    // Once the shopper has answered (a try kept their answers), an answer left empty stays empty: the merchant's
    // default fills the field only at first.
    const answered = session.collected?.custom_fields;
    const kept = answered === undefined ? undefined : answered[field.key] ?? '';
    const label = `<label class="field" for="${id}">${escapeHtml(field.label.custom)}${field.optional === true ? ` <span class="hint">${t('optionalField')}</span>` : ''}</label>`;
    const common = `id="${id}" data-detail="custom.${field.key}"${field.optional === true ? '' : ` required data-missing="${t('fillIn', { field: field.label.custom })}"`}`;
    if (field.type === 'dropdown') {
      const chosen = answered === undefined ? field.dropdown?.default_value : kept;
      const options = (field.dropdown?.options ?? []).map((option) => `<option value="${escapeHtml(option.value)}"${option.value === chosen ? ' selected' : ''}>${escapeHtml(option.label)}</option>`).join('');
      return `${label}<select class="text" ${common}><option value=""></option>${options}</select>`;
    }
    const bounds = field[field.type] ?? {};
    const numeric = field.type === 'numeric' ? ' inputmode="numeric" pattern="[0-9]*"' : '';
    return `${label}<input class="text" type="text" ${common} maxlength="${bounds.maximum_length ?? 255}"${numeric}${given(answered === undefined ? bounds.default_value : kept)}>`;
  });
  return `<fieldset class="details" data-part="custom"><legend>${t('customFieldsTitle')}</legend>
${parts.join('\n')}
</fieldset>`;
}

/** The page's fields for what the session asks: an email, a shipping address, a billing address, a phone number. */
export function detailsFields(session: CheckoutSessionRow, language: Language, merchantEmail: string | null): string {
  const parts: string[] = [];
  if (asksEmail(session, merchantEmail)) {
    const t = (key: StringKey, vars?: Record<string, string>) => escapeHtml(say(language, key, vars));
    parts.push(`<fieldset class="details" data-part="email"><legend>${t('contactEmail')}</legend>
<input class="text" id="email" type="email" maxlength="320" autocomplete="email" data-detail="email" required data-missing="${t('fillIn', { field: say(language, 'contactEmail') })}" aria-label="${t('contactEmail')}"${given(session.collected?.email)}></fieldset>`);
  }
  if (session.shipping_countries !== null) {
    parts.push(addressSection(session, 'shipping', language));
    const message = session.custom_text?.shipping_address?.message;
    if (message !== undefined) parts.push(`<p class="hint custom-text" id="custom-text-shipping-address">${messageHtml(message)}</p>`);
  }
  if (session.billing_address_collection === 'required') parts.push(addressSection(session, 'billing', language));
  if (session.phone_number_collection) {
    const t = (key: StringKey, vars?: Record<string, string>) => escapeHtml(say(language, key, vars));
    parts.push(`<fieldset class="details" data-part="phone"><legend>${t('contactPhone')}</legend>
<input class="text" id="phone-number" type="tel" maxlength="40" autocomplete="tel" data-detail="phone" required data-missing="${t('fillIn', { field: say(language, 'contactPhone') })}" data-invalid="${t('phoneInvalid')}" aria-label="${t('contactPhone')}"${given(session.collected?.phone)}></fieldset>`);
  }
  parts.push(customFieldsSection(session, language));
  return parts.filter((part) => part !== '').join('\n');
}

/** A refusal of what the page sent: the field to mark, and what to tell the shopper. */
export interface DetailsRefusal {
  field: string;
  message: string;
}

/**
 * Reads what the page sent for the details the session asks, refusing a missing required field, a country the
 * session does not ship to (or no country at all) and a phone number that is not one. Fields the session did not ask
 * for are ignored, whatever the page sent.
 */
export function readDetails(session: CheckoutSessionRow, sent: unknown, language: Language, merchantEmail: string | null): { collected: CheckoutCollected } | { refused: DetailsRefusal } {
  const given = typeof sent === 'object' && sent !== null ? sent as Record<string, unknown> : {};
  const value = (name: string, max: number) => {
    const raw = given[name];
    return typeof raw === 'string' ? raw.trim().slice(0, max) : '';
  };
  const collected: CheckoutCollected = {};
  if (asksEmail(session, merchantEmail)) {
    const email = value('email', 321);
    if (email.length > 320) return { refused: { field: 'email', message: say(language, 'emailInvalid') } };
    if (email === '') return { refused: { field: 'email', message: say(language, 'fillIn', { field: say(language, 'contactEmail') }) } };
    if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) return { refused: { field: 'email', message: say(language, 'emailInvalid') } };
    collected.email = email;
  }
  const parts: Part[] = [...(session.shipping_countries === null ? [] : ['shipping' as const]), ...(session.billing_address_collection === 'required' ? ['billing' as const] : [])];
  for (const part of parts) {
    const address: Record<string, string> = {};
    for (const field of addressFields) {
      const text = value(`${part}.${field}`, maxLengths[field]);
      if (text === '' && required.has(field)) return { refused: { field: `${part}.${field}`, message: say(language, 'fillIn', { field: say(language, labels[field]) }) } };
      if (field === 'country' && !countriesFor(session, part).includes(text)) {
        return { refused: { field: `${part}.country`, message: say(language, part === 'shipping' ? 'countryNotShipped' : 'fillIn', { field: say(language, 'addressCountry') }) } };
      }
      if (text !== '' && field !== 'name') address[field] = text;
    }
    collected[part] = { name: value(`${part}.name`, maxLengths.name), address };
  }
  if (session.phone_number_collection) {
    const phone = value('phone', 40);
    if (phone === '') return { refused: { field: 'phone', message: say(language, 'fillIn', { field: say(language, 'contactPhone') }) } };
    if (!/^\+?[0-9][0-9 ().-]{4,38}$/.test(phone) || phone.replace(/\D/g, '').length < 5) return { refused: { field: 'phone', message: say(language, 'phoneInvalid') } };
    collected.phone = phone;
  }
  const answers: Record<string, string> = {};
  for (const field of session.custom_fields ?? []) {
    const name = `custom.${field.key}`;
    const answer = value(name, 256);
    const refuse = (key: StringKey, vars: Record<string, string> = {}) => ({ refused: { field: name, message: say(language, key, { field: field.label.custom, ...vars }) } });
    if (answer === '') {
      if (field.optional === true) continue;
      return refuse('fillIn');
    }
    if (field.type === 'dropdown') {
      if (!(field.dropdown?.options ?? []).some((option) => option.value === answer)) return refuse('customFieldChoose');
    } else {
      const { minimum_length: min = 1, maximum_length: max = 255 } = field[field.type] ?? {};
      if (field.type === 'numeric' && !/^\d+$/.test(answer)) return refuse('customFieldDigits');
      if (answer.length < min || answer.length > max) return refuse(min === max ? 'customFieldExactLength' : 'customFieldLength', { min: String(min), max: String(max) });
    }
    answers[field.key] = answer;
  }
  if ((session.custom_fields ?? []).length > 0) collected.custom_fields = answers;
  // The merchant's terms, ticked (the page sends `accepted`), and the shopper's choice of the merchant's offers.
  if (session.consent_collection?.terms_of_service === 'required') {
    if (value('terms', 20) !== 'accepted') return { refused: { field: 'terms', message: say(language, 'termsMissing') } };
    collected.terms_of_service = 'accepted';
  }
  if (session.consent_collection?.promotions === 'auto') collected.promotions = value('promotions', 20) === 'opt_in' ? 'opt_in' : 'opt_out';
  return { collected };
}
