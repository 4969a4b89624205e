import { Type, type Static, type TSchema } from '@sinclair/typebox';

/**
 * WeChat Pay API v3's JSON on the wire, as schemas: the sandbox validates requests with them (WeChat's own
 * field rules: lengths, patterns, CNY only) and the connector parses answers and callbacks with them, so both
 * halves read one description. Requests refuse unknown fields (the fields WeChat documents for these calls are
 * listed); answers accept them, because WeChat adds fields over time and only the ones read here matter.
 */
function strict<T extends Record<string, TSchema>>(properties: T) {
  return Type.Object(properties, { additionalProperties: false });
}

/** RFC 3339 with a numeric offset, as WeChat writes times (`2018-06-08T10:34:56+08:00`). */
export const weChatTimePattern = '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,3})?([+-]\\d{2}:\\d{2}|Z)$';
const WeChatTime = Type.String({ pattern: weChatTimePattern });

/** How WeChat writes an instant: Beijing time with its offset. */
export function weChatTime(ms: number): string {
  return `${new Date(ms + 8 * 3_600_000).toISOString().slice(0, 19)}+08:00`;
}

export const outTradeNoPattern = '^[0-9A-Za-z_\\-|*@]{6,32}$';
export const outRefundNoPattern = '^[0-9A-Za-z_\\-|*@]{1,64}$';
/** WeChat refuses notify URLs with a query string; it must be an absolute http(s) URL. */
const NotifyUrl = Type.String({ maxLength: 256, pattern: '^https?://[^\\s?#]+$' });
/** Fen, in WeChat's signed 32-bit integer field. */
const Fen = Type.Integer({ minimum: 1, maximum: 2_147_483_647 });

const OrderAmount = strict({ total: Fen, currency: Type.Optional(Type.Literal('CNY')) });
const Detail = Type.Object({}, { additionalProperties: true });
const SettleInfo = strict({ profit_sharing: Type.Optional(Type.Boolean()) });
const StoreInfo = Type.Object({ id: Type.String({ minLength: 1, maxLength: 32 }) }, { additionalProperties: true });

function orderFields() {
  return {
    appid: Type.String({ minLength: 1, maxLength: 32 }),
    mchid: Type.String({ minLength: 1, maxLength: 32 }),
    description: Type.String({ minLength: 1, maxLength: 127 }),
    out_trade_no: Type.String({ pattern: outTradeNoPattern }),
    time_expire: Type.Optional(WeChatTime),
    attach: Type.Optional(Type.String({ maxLength: 128 })),
    notify_url: NotifyUrl,
    goods_tag: Type.Optional(Type.String({ maxLength: 32 })),
    support_fapiao: Type.Optional(Type.Boolean()),
    amount: OrderAmount,
    detail: Type.Optional(Detail),
    settle_info: Type.Optional(SettleInfo),
  };
}

const ClientIp = Type.String({ minLength: 7, maxLength: 45, pattern: '^[0-9A-Fa-f:.]+$' });

export const NativeOrder = strict({
  ...orderFields(),
  scene_info: Type.Optional(strict({
    payer_client_ip: ClientIp,
    device_id: Type.Optional(Type.String({ maxLength: 32 })),
    store_info: Type.Optional(StoreInfo),
  })),
});
export type NativeOrder = Static<typeof NativeOrder>;

export const JsapiOrder = strict({
  ...orderFields(),
  payer: strict({ openid: Type.String({ minLength: 1, maxLength: 128 }) }),
  scene_info: Type.Optional(strict({
    payer_client_ip: ClientIp,
    device_id: Type.Optional(Type.String({ maxLength: 32 })),
    store_info: Type.Optional(StoreInfo),
  })),
});
export type JsapiOrder = Static<typeof JsapiOrder>;

export const H5Order = strict({
  ...orderFields(),
  scene_info: strict({
    payer_client_ip: ClientIp,
    device_id: Type.Optional(Type.String({ maxLength: 32 })),
    store_info: Type.Optional(StoreInfo),
    h5_info: strict({
      type: Type.String({ minLength: 1, maxLength: 32 }),
      app_name: Type.Optional(Type.String({ maxLength: 64 })),
      app_url: Type.Optional(Type.String({ maxLength: 128 })),
      bundle_id: Type.Optional(Type.String({ maxLength: 128 })),
      package_name: Type.Optional(Type.String({ maxLength: 128 })),
    }),
  }),
});
export type H5Order = Static<typeof H5Order>;

export const CloseOrder = strict({ mchid: Type.String({ minLength: 1, maxLength: 32 }) });

export const RefundApplication = strict({
  transaction_id: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
  out_trade_no: Type.Optional(Type.String({ pattern: outTradeNoPattern })),
  out_refund_no: Type.String({ pattern: outRefundNoPattern }),
  reason: Type.Optional(Type.String({ maxLength: 80 })),
  notify_url: Type.Optional(NotifyUrl),
  funds_account: Type.Optional(Type.Literal('AVAILABLE')),
  amount: strict({
    refund: Fen,
    total: Fen,
    currency: Type.Literal('CNY'),
    from: Type.Optional(Type.Array(Type.Object({}, { additionalProperties: true }), { maxItems: 10 })),
  }),
  goods_detail: Type.Optional(Type.Array(Type.Object({}, { additionalProperties: true }), { maxItems: 100 })),
});
export type RefundApplication = Static<typeof RefundApplication>;

/** The query answer, and the plaintext of a TRANSACTION.* callback's resource. */
export const TransactionResource = Type.Object({
  appid: Type.String(),
  mchid: Type.String(),
  out_trade_no: Type.String(),
  transaction_id: Type.Optional(Type.String()),
  trade_type: Type.Optional(Type.String()),
  trade_state: Type.String(),
  trade_state_desc: Type.Optional(Type.String()),
  attach: Type.Optional(Type.String()),
  success_time: Type.Optional(WeChatTime),
  payer: Type.Optional(Type.Object({ openid: Type.Optional(Type.String()) })),
  amount: Type.Object({
    total: Type.Integer(),
    payer_total: Type.Optional(Type.Integer()),
    currency: Type.Optional(Type.String()),
    payer_currency: Type.Optional(Type.String()),
  }),
});
export type TransactionResource = Static<typeof TransactionResource>;

/** The refund answer and query answer. */
export const RefundResource = Type.Object({
  refund_id: Type.String(),
  out_refund_no: Type.String(),
  transaction_id: Type.String(),
  out_trade_no: Type.String(),
  status: Type.String(),
  success_time: Type.Optional(WeChatTime),
  create_time: Type.Optional(WeChatTime),
  amount: Type.Object({
    total: Type.Integer(),
    refund: Type.Integer(),
    currency: Type.String(),
  }),
});
export type RefundResource = Static<typeof RefundResource>;

/** The plaintext of a REFUND.* callback's resource (its status field is `refund_status`, and it names the mchid). */
export const RefundNotice = Type.Object({
  mchid: Type.String(),
  out_trade_no: Type.String(),
  transaction_id: Type.String(),
  out_refund_no: Type.String(),
  refund_id: Type.String(),
  refund_status: Type.String(),
  success_time: Type.Optional(WeChatTime),
  amount: Type.Object({ total: Type.Integer(), refund: Type.Integer() }),
});
export type RefundNotice = Static<typeof RefundNotice>;

export const CallbackEnvelope = Type.Object({
  id: Type.String({ minLength: 1 }),
  create_time: Type.String(),
  event_type: Type.String(),
  resource_type: Type.Literal('encrypt-resource'),
  summary: Type.String(),
  resource: Type.Object({
    algorithm: Type.Literal('AEAD_AES_256_GCM'),
    ciphertext: Type.String({ minLength: 1 }),
    nonce: Type.String({ minLength: 1 }),
    associated_data: Type.Optional(Type.String()),
    original_type: Type.String(),
  }),
});
export type CallbackEnvelope = Static<typeof CallbackEnvelope>;

export const ErrorBody = Type.Object({ code: Type.String(), message: Type.String() });

export const NativeAnswer = Type.Object({ code_url: Type.String({ minLength: 1 }) });
export const JsapiAnswer = Type.Object({ prepay_id: Type.String({ minLength: 1 }) });
export const H5Answer = Type.Object({ h5_url: Type.String({ minLength: 1 }) });

/** The header names of WeChat's signed answers and callbacks, lower-cased as Node gives them. */
export const signatureHeaders = {
  timestamp: 'wechatpay-timestamp',
  nonce: 'wechatpay-nonce',
  signature: 'wechatpay-signature',
  serial: 'wechatpay-serial',
} as const;

/** WeChat sends signatures starting with this on purpose; a merchant that accepts one does not verify. */
export const probeSignaturePrefix = 'WECHATPAY/SIGNTEST/';

/** How far a signed timestamp may be from our clock, either way (WeChat's and its SDKs' five minutes). */
export const signatureSkewSecondsMax = 300;
