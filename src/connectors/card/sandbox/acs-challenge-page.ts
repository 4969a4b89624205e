import { escapeHtml } from '../../../platform/html.ts';
import { createHash } from 'node:crypto';
import { findCurrency } from '../../../domain/currency.ts';
import { acsPathPrefix, type ChallengeView } from './access-control-server.ts';

/**
 * The ACS challenge page, where a tester plays the cardholder: enter the one-time code (shown on the page, since
 * this is a sandbox) and complete, or fail the authentication. Plain HTML forms and no script at all, one
 * stylesheet allowed by its hash, every value shown escaped. The Content-Security-Policy lets the forms post only
 * to this server and, because browsers check the redirect that follows a form post too, to the return URL's origin.
 */
const style = 'body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}'
  + 'dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem 1rem}dt{color:#555}'
  + 'form{margin:.75rem 0}button,input{font-size:1rem;padding:.5rem}.code{font-family:monospace;font-size:1.25rem}'
  + '.error{color:#a00;font-weight:bold}.note{color:#555;font-size:.9rem}';

const styleHash = `'sha256-${createHash('sha256').update(style).digest('base64')}'`;

/** The policy of a page; `formTarget` is the origin the shopper returns to, for a page with forms. */
export function challengePageCsp(formTarget: string | null): string {
  return [
    "default-src 'none'",
    `style-src ${styleHash}`,
    formTarget === null ? "form-action 'none'" : `form-action 'self' ${formTarget}`,
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** The acquirer's amount (ISO 4217 minor units) for people: `12.34 USD`. */
function displayAmount(amount: number, currencyCode: string): string {
  const exponent = findCurrency(currencyCode)?.isoExponent ?? 0;
  const digits = String(amount).padStart(exponent + 1, '0');
  const whole = digits.slice(0, digits.length - exponent);
  const fraction = exponent === 0 ? '' : `.${digits.slice(digits.length - exponent)}`;
  return `${whole}${fraction} ${currencyCode.toUpperCase()}`;
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

function details(view: ChallengeView): string {
  return `<dl>
<dt>Merchant reference</dt><dd>${escapeHtml(view.merchantReference)}</dd>
<dt>Amount</dt><dd>${escapeHtml(displayAmount(view.amount, view.currency))}</dd>
<dt>Card</dt><dd>•••• ${escapeHtml(view.last4)}</dd>
<dt>Expires</dt><dd>${escapeHtml(view.expiresAt.toISOString())}</dd>
</dl>`;
}

/** The page of a challenge: its forms while it is open, otherwise what became of it. */
export function renderChallengePage(view: ChallengeView, error: string | null): string {
  const title = '3-D Secure authentication';
  const intro = `<h1>${title}</h1>\n<p class="note">Test mode: this page stands in for the card issuer's access control server.</p>`;
  if (view.state !== 'open' || view.code === null || view.formToken === null) {
    const message = view.state === 'expired'
      ? 'This authentication has expired. Nothing was changed; return to the merchant to try again.'
      : 'This authentication has already ended. Nothing was changed.';
    return layout(title, `${intro}\n${details(view)}\n<p>${message}</p>`);
  }
  const action = `${acsPathPrefix}/challenge/${encodeURIComponent(view.acsTransId)}`;
  const token = `<input type="hidden" name="form_token" value="${escapeHtml(view.formToken)}">`;
  const problem = error === null ? '' : `<p class="error" role="alert">${escapeHtml(error)}</p>\n`;
  return layout(title, `${intro}
${details(view)}
<p>Your one-time code (shown here because this is a sandbox): <span class="code">${escapeHtml(view.code)}</span></p>
${problem}<form method="post" action="${action}">
${token}<input type="hidden" name="action" value="complete">
<label>One-time code <input name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="6" required autofocus></label>
<button type="submit">Complete</button>
</form>
<form method="post" action="${action}">
${token}<input type="hidden" name="action" value="fail">
<button type="submit">Fail</button>
</form>
<p class="note">${view.attemptsLeft} ${view.attemptsLeft === 1 ? 'try' : 'tries'} left.</p>`);
}

export function renderMessagePage(title: string, message: string): string {
  return layout(title, `<h1>${escapeHtml(title)}</h1>\n<p>${escapeHtml(message)}</p>`);
}
