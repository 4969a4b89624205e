import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { limits } from '../limits.ts';

/**
 * Building blocks of the request schemas. Every object schema refuses unknown properties, so an unknown or
 * misspelled parameter is an error naming it, never silently ignored.
 */
export function strictObject<T extends Record<string, TSchema>>(properties: T) {
  return Type.Object(properties, { additionalProperties: false });
}

/** Stripe's form encoding sends `''` to unset a field; these fields accept it. */
export function emptyable<T extends TSchema>(schema: T) {
  return Type.Union([Type.Literal(''), schema]);
}

/** A query or body that takes no parameter at all: any one given is refused, by name. */
export const NoParams = strictObject({});

export const Metadata = Type.Unsafe<Record<string, string>>({
  type: 'object',
  // As at Stripe: a key cannot hold square brackets, which the form encoding reads as nesting.
  propertyNames: { maxLength: limits.metadataKeyLengthMax, minLength: 1, pattern: '^[^\\[\\]]+$' },
  additionalProperties: { type: 'string', maxLength: limits.metadataValueLengthMax },
  maxProperties: limits.metadataKeysMax,
});

export const Expand = Type.Array(Type.String({ maxLength: 200 }), { maxItems: limits.expandEntriesMax });

export const ObjectId = Type.String({ minLength: 1, maxLength: limits.pathParamLengthMax });

export const Amount = Type.Integer();

export const Currency = Type.String({ minLength: 3, maxLength: 3, pattern: '^[a-zA-Z]{3}$' });

export const Description = Type.String({ maxLength: limits.descriptionLengthMax });

export const Email = Type.String({ maxLength: limits.emailLengthMax, pattern: '^[^\\s@]+@[^\\s@]+$' });

/** A whole statement descriptor: 5 to 22 characters, at least one letter, none of < > \\ ' " * (Stripe's rules). */
export const StatementDescriptor = Type.String({
  minLength: limits.statementDescriptorLengthMin,
  maxLength: limits.statementDescriptorLengthMax,
  pattern: '^[^<>\\\\\'"*]*[A-Za-z][^<>\\\\\'"*]*$',
});

/** A suffix to the merchant's descriptor: up to 22 characters, at least one letter, none of < > \\ ' " *. */
export const StatementDescriptorSuffix = Type.String({
  maxLength: limits.statementDescriptorLengthMax,
  pattern: '^[^<>\\\\\'"*]*[A-Za-z][^<>\\\\\'"*]*$',
});

export const Url = Type.String({ maxLength: 2048, pattern: '^https?://[^\\s]+$' });

export const Address = strictObject({
  city: Type.Optional(Type.String({ maxLength: 200 })),
  country: Type.Optional(Type.String({ maxLength: 2 })),
  line1: Type.Optional(Type.String({ maxLength: 200 })),
  line2: Type.Optional(Type.String({ maxLength: 200 })),
  postal_code: Type.Optional(Type.String({ maxLength: 20 })),
  state: Type.Optional(Type.String({ maxLength: 200 })),
});

/** Card details as a page or a server sends them, to be stored by the vault (never kept, logged or hashed as given). */
export const CardDetails = strictObject({
  number: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
  exp_month: Type.Optional(Type.Integer()),
  exp_year: Type.Optional(Type.Integer()),
  cvc: Type.Optional(Type.String({ maxLength: 8 })),
  token: Type.Optional(ObjectId),
});

/** A PaymentMethod's billing details. */
export const BillingDetails = strictObject({
  address: Type.Optional(Address),
  email: Type.Optional(Email),
  name: Type.Optional(Type.String({ maxLength: 256 })),
  phone: Type.Optional(Type.String({ maxLength: 40 })),
});

export const Shipping = strictObject({
  name: Type.String({ minLength: 1, maxLength: 200 }),
  address: Address,
  phone: Type.Optional(Type.String({ maxLength: 40 })),
  carrier: Type.Optional(Type.String({ maxLength: 200 })),
  tracking_number: Type.Optional(Type.String({ maxLength: 200 })),
});

export const ListLimit = Type.Integer({ minimum: 1, maximum: limits.listLimitMax });

/**
 * A Unix time in seconds from 1970 to the end of 9999 (less a second, so that the next second, which `gt` and
 * `lte` filters compare with, is still a date the database takes).
 */
export const unixTimeMax = 253_402_300_798;
const UnixTime = Type.Integer({ minimum: 0, maximum: unixTimeMax });

export const CreatedFilter = Type.Union([
  UnixTime,
  strictObject({
    gt: Type.Optional(UnixTime),
    gte: Type.Optional(UnixTime),
    lt: Type.Optional(UnixTime),
    lte: Type.Optional(UnixTime),
  }),
]);

export const ListQuery = {
  limit: Type.Optional(ListLimit),
  starting_after: Type.Optional(ObjectId),
  ending_before: Type.Optional(ObjectId),
  created: Type.Optional(CreatedFilter),
  expand: Type.Optional(Expand),
};

/** A search's query (`/v1/…/search`), as Stripe's search endpoints take it. */
export const SearchQuery = strictObject({
  query: Type.String({ maxLength: 1000 }), limit: Type.Optional(ListLimit), page: Type.Optional(Type.String({ maxLength: 100 })), expand: Type.Optional(Expand),
});

/** A list's query as the schema above admits it; routes pass it to `listPage` (flows/list-page.ts). */
export type ListQueryParams = Static<ReturnType<typeof strictObject<typeof ListQuery>>>;

export type { Static };
