import { escapeHtml } from '../../../platform/html.ts';
import { createHash } from 'node:crypto';
import type { ScanView } from './wechat-pay-sandbox.ts';
import type { TradeState } from './tables.ts';

/**
 * The page where a tester plays the shopper's part in the WeChat app: scan the code, then pay, fail or cancel.
 * Plain HTML forms, no script at all, one stylesheet allowed by its hash, under a Content-Security-Policy that
 * permits nothing else; every value shown is escaped. Forms post back to the sandbox with the trade's form token.
 */
const style = 'body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}'
  + 'dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem 1rem}dt{color:#555}'
  + 'form{display:inline-block;margin:.25rem .5rem .25rem 0}button{font-size:1rem;padding:.5rem 1rem}'
  + '.state{font-weight:bold}.note{color:#555;font-size:.9rem}';

export const pageCsp = [
  "default-src 'none'",
  `style-src 'sha256-${createHash('sha256').update(style).digest('base64')}'`,
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Where the sandbox's routes live; forms post to absolute paths under it so that any page can carry them. */
export const sandboxPrefix = '/sandbox/wechat-pay';

function yuan(fen: bigint): string {
  return `¥${fen / 100n}.${String(fen % 100n).padStart(2, '0')}`;
}

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<style>${style}</style>
</head>
<body>
${body}
</body>
</html>
`;
}

const actionsByState: Record<TradeState, ReadonlyArray<{ action: string; label: string }>> = {
  NOTPAY: [
    { action: 'scan', label: 'Scan the code' },
    { action: 'pay', label: 'Pay' },
    { action: 'fail', label: 'Payment fails' },
    { action: 'cancel', label: 'Cancel (close the order)' },
  ],
  USERPAYING: [
    { action: 'pay', label: 'Pay' },
    { action: 'fail', label: 'Payment fails' },
    { action: 'cancel', label: 'Cancel (close the order)' },
  ],
  SUCCESS: [],
  REFUND: [],
  CLOSED: [],
  REVOKED: [],
  PAYERROR: [],
};

const flowNames = { NATIVE: 'Native (QR code)', JSAPI: 'JSAPI (in WeChat)', MWEB: 'H5 (mobile browser)' } as const;

/** The payment page; `returnUrl` (the merchant's `redirect_url` of the H5 flow) is shown as a link back. */
export function renderScanPage(view: ScanView, returnUrl: string | null): string {
  const hidden = `<input type="hidden" name="form_token" value="${escapeHtml(view.formToken)}">`
    + (returnUrl === null ? '' : `<input type="hidden" name="redirect_url" value="${escapeHtml(returnUrl)}">`);
  const forms = actionsByState[view.tradeState]
    .map(({ action, label }) => `<form method="post" action="${sandboxPrefix}/scan/${encodeURIComponent(view.token)}/${action}">`
      + `${hidden}<button type="submit" name="action" value="${action}">${escapeHtml(label)}</button></form>`)
    .join('\n');
  const back = returnUrl === null ? '' : `<p><a href="${escapeHtml(returnUrl)}" rel="noreferrer">Return to the merchant</a></p>`;
  return layout('WeChat Pay sandbox', `<h1>WeChat Pay sandbox</h1>
<p class="note">Test mode: no money moves. This page stands in for the WeChat app.</p>
<dl>
<dt>Merchant</dt><dd>${escapeHtml(view.mchid)}</dd>
<dt>Order</dt><dd>${escapeHtml(view.outTradeNo)}</dd>
<dt>Description</dt><dd>${escapeHtml(view.description)}</dd>
<dt>Amount</dt><dd>${yuan(view.amountFen)}</dd>
<dt>Flow</dt><dd>${flowNames[view.tradeType]}</dd>
<dt>Expires</dt><dd>${escapeHtml(view.expiresAt.toISOString())}</dd>
<dt>State</dt><dd class="state">${escapeHtml(view.tradeState)}</dd>
</dl>
${forms}
${back}`);
}

export function renderMessagePage(title: string, message: string): string {
  return layout(title, `<h1>${escapeHtml(title)}</h1>\n<p>${escapeHtml(message)}</p>`);
}

/** Only an absolute http(s) URL is offered as the way back (never `javascript:` or a relative path). */
export function safeReturnUrl(value: unknown): string | null {
  if (typeof value !== 'string' || value.length > 2048) return null;
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.toString() : null;
  } catch {
    return null;
  }
}
