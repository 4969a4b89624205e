import { escapeHtml } from '../../../platform/html.ts';
import { createHash } from 'node:crypto';
import type { TradeStatus } from './tables.ts';

/**
 * The sandbox's cashier: the page a tester opens (a page trade's redirect, or a QR code's URL, which stands for
 * the shopper's Alipay app) to scan, pay or cancel. Forms only, no script; its one style sheet is allowed by
 * hash in the page's own Content-Security-Policy.
 */

const style = [
  'body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}',
  'h1{font-size:1.3rem;color:#1677ff}',
  'dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}',
  'dt{color:#666}',
  'form{display:inline-block;margin:1rem 1rem 0 0}',
  'button{font-size:1rem;padding:.5rem 1.2rem}',
  '.status{font-weight:bold}',
].join('');
const styleHash = createHash('sha256').update(style).digest('base64');

/** The page's policy: nothing loads, forms post only to the cashier (and, after paying, redirect to the shop). */
export function cashierContentSecurityPolicy(returnUrl: string | null): string {
  let formAction = "'self'";
  if (returnUrl !== null) formAction += ` ${new URL(returnUrl).origin}`;
  return `default-src 'none'; style-src 'sha256-${styleHash}'; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`;
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><style>${style}</style></head>
<body><h1>Alipay sandbox</h1>${body}</body></html>
`;
}

export interface CashierView {
  cashierToken: string;
  formToken: string;
  tradeNo: string;
  outTradeNo: string;
  subject: string;
  totalAmount: string;
  status: TradeStatus;
  /** Whether the trade exists yet (a QR code not scanned does not). */
  scanned: boolean;
  timeExpire: string;
}

function actionForm(view: CashierView, action: 'scan' | 'pay' | 'cancel', label: string): string {
  return `<form method="post" action="${escapeHtml(view.cashierToken)}/${action}">`
    + `<input type="hidden" name="form_token" value="${escapeHtml(view.formToken)}">`
    + `<button type="submit" name="action" value="${action}">${label}</button></form>`;
}

function actions(view: CashierView): string {
  switch (view.status) {
    case 'WAIT_BUYER_PAY':
      return view.scanned
        ? `<p>Scanned: the trade exists. The buyer can now pay or cancel.</p>${actionForm(view, 'pay', 'Pay')}${actionForm(view, 'cancel', 'Cancel')}`
        : `<p>Not scanned yet: for Alipay this trade does not exist until the buyer scans its QR code.</p>${actionForm(view, 'scan', 'Scan QR code')}${actionForm(view, 'pay', 'Scan and pay')}`;
    case 'TRADE_SUCCESS':
    case 'TRADE_FINISHED':
      return '<p>Paid.</p>';
    case 'TRADE_CLOSED':
      return '<p>This trade is closed.</p>';
  }
}

export function renderCashierPage(view: CashierView): string {
  const rows = [
    ['Subject', view.subject],
    ['Amount', `¥${view.totalAmount}`],
    ['Merchant order', view.outTradeNo],
    ['Alipay trade', view.tradeNo],
    ['Payable until', `${view.timeExpire} (Beijing time)`],
  ].map(([name, value]) => `<dt>${escapeHtml(name ?? '')}</dt><dd>${escapeHtml(value ?? '')}</dd>`).join('');
  return page(`Alipay sandbox: ${view.subject}`, `<dl>${rows}<dt>Status</dt><dd class="status">${view.status}</dd></dl>${actions(view)}`);
}

export function renderMessagePage(title: string, message: string): string {
  return page(title, `<p class="status">${escapeHtml(title)}</p><p>${escapeHtml(message)}</p>`);
}
