import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

/**
 * The staff sign-in and enrollment pages on the internal listener (the console will grow from it): static HTML, one script and
 * one stylesheet, all same-origin, under a strict Content-Security-Policy. The page talks to the staff API only.
 */
const directory = path.join(path.dirname(fileURLToPath(import.meta.url)), 'staff-page');
const pageCsp = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "img-src 'self'",
  "form-action 'self'", "base-uri 'none'", "frame-ancestors 'none'",
].join('; ');

const files = {
  '/staff/sign-in': { file: 'sign-in.html', type: 'text/html; charset=utf-8' },
  '/staff/enroll': { file: 'enroll.html', type: 'text/html; charset=utf-8' },
  '/staff/assets/enroll.js': { file: 'enroll.js', type: 'text/javascript; charset=utf-8' },
  '/staff/assets/staff.js': { file: 'staff.js', type: 'text/javascript; charset=utf-8' },
  '/staff/assets/staff.css': { file: 'staff.css', type: 'text/css; charset=utf-8' },
} as const;

export function registerStaffPages(app: FastifyInstance): void {
  for (const [url, { file, type }] of Object.entries(files)) {
    const body = fs.readFileSync(path.join(directory, file));
    app.get(url, { config: { staffAccess: 'public' } }, async (_request, reply) => {
      reply.header('content-type', type).header('cache-control', 'no-store').header('content-security-policy', pageCsp);
      return reply.send(body);
    });
  }
  app.get('/staff', { config: { staffAccess: 'public' } }, async (_request, reply) => reply.redirect('/staff/sign-in', 303));
}
