import http from 'node:http';
import https from 'node:https';
import type { NotificationSender } from './sandbox-faults.ts';

/** How much of an answer a sandbox reads (Coffer answers notifications with a few bytes). */
const answerBytesMax = 4096;

/**
 * Sends a sandbox's notification over HTTP(S), as the provider would: test mode posts to Coffer's own public
 * listener, whose self-signed certificate is trusted through `ca`. A network failure or timeout rejects.
 */
export function httpNotificationSender(options: { ca: () => string | undefined; timeoutMs: number }): NotificationSender {
  return (url, request) =>
    new Promise((resolve, reject) => {
      const target = new URL(url);
      const transport = target.protocol === 'https:' ? https : http;
      const ca = options.ca();
      const outgoing = transport.request(target, {
        method: 'POST',
        headers: { ...request.headers, 'content-length': Buffer.byteLength(request.body).toString() },
        timeout: options.timeoutMs,
        ...(target.protocol === 'https:' && ca !== undefined ? { ca } : {}),
      }, (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size <= answerBytesMax) chunks.push(chunk);
        });
        response.on('end', () => resolve({ statusCode: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        response.on('error', reject);
      });
      outgoing.on('timeout', () => outgoing.destroy(new Error(`no answer within ${options.timeoutMs} ms`)));
      outgoing.on('error', reject);
      outgoing.end(request.body);
    });
}
