import { findCurrency } from '../domain/currency.ts';
/**
 * The hosted checkout's words, in English and Simplified Chinese. Every string the page or its script shows is
 * here, so that the two languages cannot drift apart (a test checks that both have every key).
 */
export const languages = ['en', 'zh'] as const;
export type Language = (typeof languages)[number];

const en = {
  title: 'Checkout',
  payTo: 'Pay {merchant}',
  orderSummary: 'Order summary',
  quantity: 'Qty {n}',
  total: 'Total',
  chooseMethod: 'Payment method',
  card: 'Card',
  alipay: 'Alipay',
  wechatPay: 'WeChat Pay',
  cardDetails: 'Card details',
  cardNumber: 'Card number',
  expiry: 'Expiry (MM / YY)',
  securityCode: 'Security code',
  pay: 'Pay {amount}',
  book: 'Book {amount}',
  donate: 'Donate {amount}',
  termsMissing: 'Agree to the terms to continue.',
  optionalTitle: 'Add to your order',
  optionalAdd: 'Add (qty {n})',
  optionalEach: '{amount} each',
  customFieldsTitle: 'Additional information',
  optionalField: '(optional)',
  customFieldChoose: '{field}: choose one of the options.',
  customFieldDigits: '{field}: digits only.',
  customFieldLength: '{field}: between {min} and {max} characters.',
  customFieldExactLength: '{field}: exactly {min} characters.',
  promotionsOptIn: 'Send me news and offers from {merchant} by email.',
  payWithAlipay: 'Continue to Alipay',
  showWechatCode: 'Show WeChat Pay QR code',
  payWithWechat: 'Pay with WeChat Pay',
  wechatNotCompleted: 'The WeChat Pay payment was not completed. Nothing was charged; you can try again.',
  wechatScan: 'Open WeChat and scan this code to pay {amount}.',
  wechatQrAlt: 'WeChat Pay QR code for {amount}',
  waiting: 'Waiting for your payment…',
  processing: 'Processing…',
  declined: 'The payment was not completed: {reason} Nothing was charged. Try again or use another method.',
  failed: 'Something went wrong. Nothing was charged. Please try again.',
  invalidCard: 'Check the card details: {reason}',
  cancel: 'Cancel and return to the shop',
  language: 'Language',
  securityTitle: 'Paying safely',
  tip1: 'Check that the address bar shows this site before you enter card details.',
  tip2: 'We never ask for your card PIN or a login password by email, phone or chat.',
  tip3: 'Only confirm a payment in your bank or wallet app if you started it yourself.',
  expiredTitle: 'This checkout has expired',
  expiredText: 'Nothing was charged. Return to the shop to start again.',
  returnToShop: 'Return to the shop',
  notFound: 'This checkout page does not exist.',
  doneTitle: 'Payment complete',
  doneText: 'Thank you. Your payment of {amount} to {merchant} is complete.',
  receiptReference: 'Receipt reference',
  receiptSent: 'A receipt was sent to {email}.',
  problemTitle: 'A problem with this payment?',
  problemText: 'Tell the shop what went wrong; they will contact you.',
  problemMessage: 'What happened',
  problemContact: 'Your email or phone (optional)',
  problemSend: 'Send to the shop',
  problemThanks: 'Thank you: the shop has your message (case {case}).',
  problemEmpty: 'Please describe the problem.',
  problemTooMany: 'The shop already has your messages about this payment; it will answer them.',
  continue: 'Continue',
  cardFrameTitle: 'Secure card entry',
  cardKeptOnSession: 'By paying, you allow {merchant} to save this card for your future purchases.',
  shippingAddress: 'Shipping address',
  billingAddress: 'Billing address',
  contactPhone: 'Phone number',
  contactEmail: 'Email',
  emailInvalid: 'Enter an email address, such as ada@example.com.',
  fullName: 'Full name',
  addressLine1: 'Address',
  addressLine2: 'Apartment, suite, floor (optional)',
  addressCity: 'City',
  addressState: 'State, province or region (optional)',
  addressPostalCode: 'Postal code (if your address has one)',
  addressCountry: 'Country or region',
  fillIn: 'Fill in: {field}.',
  phoneInvalid: 'Enter a phone number, such as +1 415 555 0100.',
  countryNotShipped: 'We do not ship to this country or region; choose another.',
  cardKeptOffSession: 'By paying, you allow {merchant} to save this card and charge it for future payments in line with their terms.',
  stepUpTitle: 'Confirm it is you',
  stepUpText: 'This payment needs one more step. Choose how to confirm it.',
  stepUpHow: 'Confirm with',
  stepUpCodeMethod: 'A one-time code',
  stepUpPasswordMethod: 'Payment password',
  stepUpPasskeyMethod: 'Fingerprint or passkey',
  phone: 'Mobile phone number or email',
  paymentPassword: 'Payment password (6 digits)',
  newPassword: 'Set a payment password for next time (6 digits, optional)',
  savePasskey: 'Save a passkey on this device for next time',
  passkeyText: 'Use the fingerprint, face or screen lock of this device.',
  passwordHelp: 'No payment password yet, or forgot it? Confirm with a code, and set one there.',
  sendCode: 'Send code',
  code: 'Six-digit code',
  verify: 'Confirm and pay',
  codeSent: 'We sent you a code. It is valid for 5 minutes.',
  stepUp_invalid_phone: 'Enter a mobile phone number with its country code, such as +86 138 0000 0000, or an email address.',
  stepUp_too_many_codes: 'Too many codes were sent to this number. Try again in an hour.',
  stepUp_not_on_file: 'Use the phone number or email address you gave the shop for this order.',
  stepUp_not_on_file_locked: 'Too many tries with a phone number or email address the shop does not have for this order. This payment can no longer be confirmed on this page: ask the shop for a new payment link.',
  stepUp_wait_before_resend: 'Wait half a minute before asking for another code.',
  stepUp_no_code: 'Ask for a code first.',
  stepUp_expired: 'The code has expired. Ask for a new one.',
  stepUp_locked: 'Too many wrong codes. Ask for a new one.',
  stepUp_wrong_code: 'That code is not right. {remaining} tries left.',
  stepUp_password_format: 'A payment password is six digits.',
  stepUp_password_weak: 'That payment password is too easy to guess (a digit repeated, or a run such as 123456). Choose another.',
  stepUp_password_wrong: 'The phone number, email or payment password is not right. {remaining} tries left.',
  stepUp_password_locked: 'The payment password is locked after 5 wrong tries. Confirm with a code instead, and set a new payment password there.',
  stepUp_passkey_unavailable: 'Passkeys cannot be used on this page. Choose another way.',
  stepUp_passkey_failed: 'The passkey could not confirm this payment. Try again, or choose another way.',
  stepUp_payment_changed: 'The payment changed after you were asked to confirm it. Confirm it again.',
  stepUp_not_verified: 'Confirm with a code first; then you can save a passkey.',
  paymentChanged: 'The amount of this payment has changed. Check it, then pay again.',
  subtotal: 'Subtotal',
  shippingLine: 'Shipping: {name}',
  shippingMethod: 'Shipping method',
  shippingFree: 'Free',
  chooseShipping: 'Choose a shipping method.',
  quantityOf: 'Quantity of {name}',
  linkContinue: 'Continue to payment',
  linkShippingNext: 'Shipping is chosen on the next page.',
  linkInactiveTitle: 'This link is no longer available',
  linkInactiveText: 'The shop has stopped taking payments through this link. Nothing was charged.',
  linkUnavailable: 'This order can no longer be bought through this link. Nothing was charged; contact the shop.',
  quantityOutOfRange: 'Choose a quantity from {minimum} to {maximum}.',
  orderEmpty: 'Your order is empty: choose at least one item.',
  orderTooLarge: 'This order is more than can be paid at once; lower a quantity.',
  orderTooSmall: 'The order must come to at least {amount}.',
  deliveryRange: '{min} to {max}',
  deliveryAtLeast: 'At least {min}',
  deliveryUpTo: 'Up to {max}',
  unit_business_day: '{n} business day',
  unit_business_days: '{n} business days',
  unit_day: '{n} day',
  unit_days: '{n} days',
  unit_hour: '{n} hour',
  unit_hours: '{n} hours',
  unit_week: '{n} week',
  unit_weeks: '{n} weeks',
  unit_month: '{n} month',
  unit_months: '{n} months',
} as const;

export type StringKey = keyof typeof en;

const zh: Record<StringKey, string> = {
  title: '结账',
  payTo: '向 {merchant} 付款',
  orderSummary: '订单摘要',
  quantity: '数量 {n}',
  total: '合计',
  chooseMethod: '支付方式',
  card: '银行卡',
  alipay: '支付宝',
  wechatPay: '微信支付',
  cardDetails: '银行卡信息',
  cardNumber: '卡号',
  expiry: '有效期（月 / 年）',
  securityCode: '安全码',
  pay: '支付 {amount}',
  book: '预订 {amount}',
  donate: '捐赠 {amount}',
  termsMissing: '请先同意条款再继续。',
  optionalTitle: '加购商品',
  optionalAdd: '加购（{n} 件）',
  optionalEach: '每件 {amount}',
  customFieldsTitle: '其他信息',
  optionalField: '（选填）',
  customFieldChoose: '{field}：请从选项中选择一项。',
  customFieldDigits: '{field}：只能填写数字。',
  customFieldLength: '{field}：请填写 {min} 到 {max} 个字符。',
  customFieldExactLength: '{field}：请填写 {min} 个字符。',
  promotionsOptIn: '通过电子邮件接收 {merchant} 的新闻和优惠。',
  payWithAlipay: '前往支付宝付款',
  showWechatCode: '显示微信支付二维码',
  payWithWechat: '使用微信支付',
  wechatNotCompleted: '微信支付未完成，未扣款，您可以重试。',
  wechatScan: '打开微信扫描此二维码，支付 {amount}。',
  wechatQrAlt: '支付 {amount} 的微信支付二维码',
  waiting: '正在等待您完成付款…',
  processing: '处理中…',
  declined: '付款未完成：{reason} 未扣任何款项。请重试或换一种支付方式。',
  failed: '出现问题，未扣任何款项。请重试。',
  invalidCard: '请检查银行卡信息：{reason}',
  cancel: '取消并返回商店',
  language: '语言',
  securityTitle: '安全支付',
  tip1: '输入银行卡信息前，请确认地址栏显示的是本网站。',
  tip2: '我们绝不会通过邮件、电话或聊天索要您的银行卡密码或登录密码。',
  tip3: '只有在您本人发起付款时，才在银行或钱包应用中确认。',
  expiredTitle: '此结账页面已过期',
  expiredText: '未扣任何款项。请返回商店重新下单。',
  returnToShop: '返回商店',
  notFound: '此结账页面不存在。',
  doneTitle: '付款成功',
  doneText: '谢谢。您已成功向 {merchant} 支付 {amount}。',
  receiptReference: '收据编号',
  receiptSent: '收据已发送至 {email}。',
  problemTitle: '付款有问题？',
  problemText: '请告诉商家出了什么问题，商家会与您联系。',
  problemMessage: '发生了什么',
  problemContact: '您的邮箱或电话（选填）',
  problemSend: '发送给商家',
  problemThanks: '谢谢，商家已收到您的留言（编号 {case}）。',
  problemEmpty: '请描述遇到的问题。',
  problemTooMany: '商家已收到您关于这笔付款的留言，会尽快回复。',
  continue: '继续',
  cardFrameTitle: '安全的银行卡输入',
  cardKeptOnSession: '付款即表示您同意 {merchant} 保存此银行卡，供您今后购物时使用。',
  shippingAddress: '收货地址',
  billingAddress: '账单地址',
  contactPhone: '电话号码',
  contactEmail: '电子邮箱',
  emailInvalid: '请输入电子邮箱地址，例如 ada@example.com。',
  fullName: '姓名',
  addressLine1: '详细地址',
  addressLine2: '楼层、单元、门牌号（选填）',
  addressCity: '城市',
  addressState: '省、州或地区（选填）',
  addressPostalCode: '邮政编码（如有）',
  addressCountry: '国家或地区',
  fillIn: '请填写：{field}。',
  phoneInvalid: '请输入有效的电话号码，例如 +86 138 0000 0000。',
  countryNotShipped: '我们不向该国家或地区发货，请选择其他国家或地区。',
  cardKeptOffSession: '付款即表示您同意 {merchant} 保存此银行卡，并按其条款在今后的付款中从此卡扣款。',
  stepUpTitle: '确认是您本人',
  stepUpText: '此次付款还需一步验证，请选择验证方式。',
  stepUpHow: '验证方式',
  stepUpCodeMethod: '一次性验证码',
  stepUpPasswordMethod: '支付密码',
  stepUpPasskeyMethod: '指纹或通行密钥',
  phone: '手机号码或电子邮箱',
  paymentPassword: '支付密码（6 位数字）',
  newPassword: '设置支付密码，下次使用（6 位数字，可选）',
  savePasskey: '在此设备上保存通行密钥，下次使用',
  passkeyText: '请使用此设备的指纹、面容或屏幕锁。',
  passwordHelp: '还没有支付密码或忘记了？请用验证码验证，并在那里设置。',
  sendCode: '发送验证码',
  code: '六位验证码',
  verify: '确认并付款',
  codeSent: '验证码已发送，5 分钟内有效。',
  stepUp_invalid_phone: '请输入带国家代码的手机号码（例如 +86 138 0000 0000）或电子邮箱。',
  stepUp_too_many_codes: '此号码收到的验证码过多，请一小时后再试。',
  stepUp_not_on_file: '请使用您在此订单中向商家提供的手机号码或电子邮箱。',
  stepUp_not_on_file_locked: '使用商家没有的手机号码或电子邮箱尝试的次数过多，此次付款已无法在此页面验证。请向商家索取新的付款链接。',
  stepUp_wait_before_resend: '请等待半分钟后再获取新的验证码。',
  stepUp_no_code: '请先获取验证码。',
  stepUp_expired: '验证码已过期，请重新获取。',
  stepUp_locked: '错误次数过多，请重新获取验证码。',
  stepUp_wrong_code: '验证码不正确，还可尝试 {remaining} 次。',
  stepUp_password_format: '支付密码为 6 位数字。',
  stepUp_password_weak: '此支付密码太容易被猜到（重复数字或 123456 这样的连续数字），请换一个。',
  stepUp_password_wrong: '手机号码、邮箱或支付密码不正确，还可尝试 {remaining} 次。',
  stepUp_password_locked: '支付密码连续错误 5 次，已被锁定。请改用验证码验证，并在那里设置新的支付密码。',
  stepUp_passkey_unavailable: '此页面无法使用通行密钥，请选择其他方式。',
  stepUp_passkey_failed: '通行密钥未能验证此次付款。请重试或选择其他方式。',
  stepUp_payment_changed: '要求验证后付款信息发生了变化，请重新验证。',
  stepUp_not_verified: '请先用验证码验证，然后才能保存通行密钥。',
  paymentChanged: '此次付款的金额已变更，请核对后重新付款。',
  subtotal: '小计',
  shippingLine: '运费：{name}',
  shippingMethod: '配送方式',
  shippingFree: '免运费',
  chooseShipping: '请选择配送方式。',
  quantityOf: '{name}的数量',
  linkContinue: '继续付款',
  linkShippingNext: '配送方式在下一页选择。',
  linkInactiveTitle: '此付款链接已失效',
  linkInactiveText: '商家已停止通过此链接收款，未扣任何款项。',
  linkUnavailable: '此订单已无法通过此链接购买，未扣任何款项，请联系商家。',
  quantityOutOfRange: '请选择 {minimum} 到 {maximum} 之间的数量。',
  orderEmpty: '订单为空，请至少选择一件商品。',
  orderTooLarge: '订单金额超出单笔可付上限，请减少数量。',
  orderTooSmall: '订单金额至少为 {amount}。',
  deliveryRange: '{min} 至 {max}',
  deliveryAtLeast: '至少 {min}',
  deliveryUpTo: '最多 {max}',
  unit_business_day: '{n} 个工作日',
  unit_business_days: '{n} 个工作日',
  unit_day: '{n} 天',
  unit_days: '{n} 天',
  unit_hour: '{n} 小时',
  unit_hours: '{n} 小时',
  unit_week: '{n} 周',
  unit_weeks: '{n} 周',
  unit_month: '{n} 个月',
  unit_months: '{n} 个月',
};

export const strings: Record<Language, Record<StringKey, string>> = { en, zh };

/**
 * The locales a Checkout Session takes, as Stripe's Checkout does (`auto` is the browser's). The page is written in
 * English and Simplified Chinese: a session in another locale shows the one of those the browser prefers.
 */
export const checkoutLocales = [
  'auto', 'bg', 'cs', 'da', 'de', 'el', 'en', 'en-GB', 'es', 'es-419', 'et', 'fi', 'fil', 'fr', 'fr-CA', 'hi-IN', 'hr', 'hu', 'id', 'it',
  'ja', 'ko', 'lt', 'lv', 'ms', 'mt', 'nb', 'nl', 'pl', 'pt', 'pt-BR', 'ro', 'ru', 'sk', 'sl', 'sv', 'th', 'tr', 'vi', 'zh', 'zh-HK', 'zh-TW',
] as const;

/** The language of the page Coffer has for a session's locale (any English, any Chinese), if it has one. */
function languageOfLocale(locale: string | null): Language | undefined {
  if (locale === null) return undefined;
  if (locale === 'en' || locale.startsWith('en-')) return 'en';
  if (locale === 'zh' || locale.startsWith('zh-')) return 'zh';
  return undefined;
}

/** The page's language: asked for, then the session's, then the browser's (any Chinese is Simplified Chinese), else English. */
export function chooseLanguage(asked: string | undefined, sessionLocale: string | null, acceptLanguage: string | undefined): Language {
  if (asked === 'en' || asked === 'zh') return asked;
  const ofSession = languageOfLocale(sessionLocale);
  if (ofSession !== undefined) return ofSession;
  const ranked = (acceptLanguage ?? '').split(',').map((part) => {
    const [tag = '', ...params] = part.trim().split(';');
    const q = params.map((param) => /^q=([0-9.]+)$/.exec(param.trim())?.[1]).find((value) => value !== undefined);
    return { tag: tag.toLowerCase(), q: q === undefined ? 1 : Number(q) };
  }).filter((entry) => entry.tag !== '' && entry.q > 0).sort((a, b) => b.q - a.q);
  for (const { tag } of ranked) {
    if (tag.startsWith('zh')) return 'zh';
    if (tag.startsWith('en')) return 'en';
  }
  return 'en';
}

/** A string with its `{name}` placeholders filled. */
export function say(language: Language, key: StringKey, values: Record<string, string> = {}): string {
  return strings[language][key].replace(/\{(\w+)\}/g, (whole, name: string) => values[name] ?? whole);
}

/** The locale amounts are formatted in. */
export function localeOf(language: Language): string {
  return language === 'zh' ? 'zh-CN' : 'en-US';
}

/** An amount in the currency's usual form for the page's language (`$42.00`, `¥42.00`). */
export function formatMoney(amountMinor: bigint | number, currencyCode: string, language: Language): string {
  const currency = findCurrency(currencyCode);
  const exponent = currency?.apiExponent ?? 2;
  return new Intl.NumberFormat(localeOf(language), { style: 'currency', currency: currencyCode.toUpperCase() }).format(Number(amountMinor) / 10 ** exponent);
}

const reasons: Record<string, { en: string; zh: string }> = {
  insufficient_funds: { en: 'the card has insufficient funds.', zh: '银行卡余额不足。' },
  expired_card: { en: 'the card has expired.', zh: '银行卡已过期。' },
  incorrect_cvc: { en: 'the security code is incorrect.', zh: '安全码不正确。' },
  invalid_cvc: { en: 'the security code is incorrect.', zh: '安全码不正确。' },
  incorrect_number: { en: 'the card number is incorrect.', zh: '卡号不正确。' },
  invalid_number: { en: 'the card number is incorrect.', zh: '卡号不正确。' },
  invalid_expiry_month: { en: 'the expiry month is incorrect.', zh: '有效期月份不正确。' },
  invalid_expiry_year: { en: 'the expiry year is incorrect.', zh: '有效期年份不正确。' },
  processing_error: { en: 'an error occurred while processing the card.', zh: '处理银行卡时出错。' },
  lost_card: { en: 'the card was declined.', zh: '银行卡被拒绝。' },
  stolen_card: { en: 'the card was declined.', zh: '银行卡被拒绝。' },
  fraudulent: { en: 'the payment was declined.', zh: '付款被拒绝。' },
  authentication_required: { en: 'the bank asks you to confirm the payment.', zh: '银行要求您验证此次付款。' },
  payment_intent_authentication_failure: { en: 'the bank could not confirm it was you.', zh: '银行未能验证您的身份。' },
  payment_limit_exceeded: { en: 'it is above the shop\'s payment limit.', zh: '超出商家的支付限额。' },
  payment_intent_payment_attempt_expired: { en: 'the time to pay ran out.', zh: '付款已超时。' },
  payment_method_provider_decline: { en: 'the payment provider declined it.', zh: '支付机构拒绝了此次付款。' },
  card_declined: { en: 'the card was declined.', zh: '银行卡被拒绝。' },
};

/** A decline or error, said to a shopper in their language: the decline code if known, else the error code, else generic. */
export function declineReason(language: Language, code: string, declineCode?: string | null): string {
  const found = (declineCode === undefined || declineCode === null ? undefined : reasons[declineCode]) ?? reasons[code];
  if (found !== undefined) return found[language];
  return language === 'zh' ? '付款未能完成。' : 'the payment could not be completed.';
}
