import http from 'node:http';

export interface Received {
  body: string;
  signature: string | undefined;
  eventId: string;
  type: string;
  receivedAtMs: number;
}

/**
 * A merchant's webhook receiver on loopback: records every delivery, answers 200 or (with `failRate`) 500,
 * and applies each event id once, as a well-written receiver deduplicates.
 */
export class WebhookReceiver {
  readonly received: Received[] = [];
  readonly effects = new Map<string, number>();
  failRate = 0;
  delayMs = 0;
  #server: http.Server | undefined;
  #random: () => number;

  constructor(seed = 1) {
    let state = seed;
    this.#random = () => {
      state = (state * 1103515245 + 12345) % 2147483648;
      return state / 2147483648;
    };
  }

  async start(): Promise<string> {
    this.#server = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const event = JSON.parse(body) as { id: string; type: string };
        this.received.push({ body, signature: request.headers['stripe-signature'] as string | undefined, eventId: event.id, type: event.type, receivedAtMs: Date.now() });
        const respond = () => {
          if (this.#random() < this.failRate) {
            response.writeHead(500).end('try again');
            return;
          }
          this.effects.set(event.id, 1);
          response.writeHead(200).end('ok');
        };
        if (this.delayMs > 0) setTimeout(respond, this.delayMs);
        else respond();
      });
    });
    await new Promise<void>((resolve) => this.#server?.listen(0, '127.0.0.1', resolve));
    const address = this.#server.address();
    if (address === null || typeof address === 'string') throw new Error('no address');
    return `http://127.0.0.1:${address.port}/webhooks`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()));
  }
}
