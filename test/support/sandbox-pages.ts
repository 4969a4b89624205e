import type https from 'node:https';
import { rawRequest, type RawResponse } from './server.ts';

/** A sandbox page (a provider's cashier, scan page or 3-D Secure challenge) as a tester's browser gets it. */
export interface SandboxPage {
  url: URL;
  body: string;
}

type Server = { port: number; agent: https.Agent };

function decodeEntities(text: string): string {
  return text.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>');
}

/** Opens a URL on Coffer's listener, following the sandbox's own redirects (at most 5). */
export async function openPage(server: Server, address: string): Promise<SandboxPage> {
  let url = new URL(address);
  for (let hop = 0; hop < 5; hop += 1) {
    const response = await rawRequest(server, 'GET', `${url.pathname}${url.search}`);
    const location = response.headers.location;
    if (response.status >= 300 && response.status < 400 && typeof location === 'string') {
      url = new URL(location, url);
      continue;
    }
    if (response.status !== 200) throw new Error(`GET ${url.pathname} answered ${response.status}: ${response.body.slice(0, 300)}`);
    return { url, body: response.body };
  }
  throw new Error(`too many redirects from ${address}`);
}

/** Submits the form on the page whose button has this value (`pay`, `cancel`, `complete`, …), with its fields. */
export async function pressButton(server: Server, page: SandboxPage, action: string, fields: Record<string, string> = {}): Promise<RawResponse> {
  const forms = page.body.match(/<form\b[^>]*>[\s\S]*?<\/form>/g) ?? [];
  const form = forms.find((candidate) =>
    new RegExp(`<button[^>]*value="${action}"`).test(candidate) || new RegExp(`<input[^>]*name="action"[^>]*value="${action}"`).test(candidate));
  if (form === undefined) throw new Error(`no "${action}" button on ${page.url.pathname}: ${page.body.slice(0, 500)}`);
  const target = new URL(decodeEntities(/action="([^"]*)"/.exec(form)?.[1] ?? ''), page.url);
  const values = new URLSearchParams();
  for (const input of form.match(/<input\b[^>]*>/g) ?? []) {
    const name = /name="([^"]*)"/.exec(input)?.[1];
    if (name !== undefined) values.set(name, decodeEntities(/value="([^"]*)"/.exec(input)?.[1] ?? ''));
  }
  values.set('action', action);
  values.delete('code');
  for (const [name, value] of Object.entries(fields)) values.set(name, value);
  return rawRequest(server, 'POST', `${target.pathname}${target.search}`, { body: values.toString() });
}
