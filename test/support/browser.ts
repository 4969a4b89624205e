import { createHash, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Debian's chromium; `.ci/run` installs it. */
export const chromiumPath = '/usr/bin/chromium';

/** Why the browser tests cannot run here, or `false`. In CI the browser must be there, so a missing one fails. */
export function browserMissing(): string | false {
  if (fs.existsSync(chromiumPath)) return false;
  if (process.env.CI === 'true') throw new Error(`${chromiumPath} is missing: .ci/run must install the chromium package`);
  return 'chromium is not installed (apt-get install chromium)';
}

/**
 * Headless chromium that trusts one certificate by its public key (Coffer's self-signed one), as if a CA had
 * issued it: WebAuthn refuses pages served with certificate errors, so ignoring errors would not do.
 */
export async function launchTrusting(certificatePem: string): Promise<Browser> {
  const spki = new X509Certificate(certificatePem).publicKey.export({ type: 'spki', format: 'der' });
  const pin = createHash('sha256').update(spki).digest('base64');
  return chromium.launch({
    executablePath: chromiumPath,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run',
      `--ignore-certificate-errors-spki-list=${pin}`,
    ],
  });
}

/**
 * A screenshot of the whole page. A cross-origin frame (the card frame) below the fold is left blank by a full-page
 * capture, so the window is made as tall as the page for the shot instead.
 */
export async function wholePageScreenshot(page: Page, file: string): Promise<void> {
  const viewport = page.viewportSize();
  const height = await page.evaluate('document.documentElement.scrollHeight') as number;
  if (viewport !== null) await page.setViewportSize({ width: viewport.width, height: Math.max(viewport.height, Math.ceil(height)) });
  await page.screenshot({ path: file });
  if (viewport !== null) await page.setViewportSize(viewport);
}
