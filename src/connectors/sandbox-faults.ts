/**
 * The test controls every provider sandbox offers (the `/sandbox/<provider>/control` endpoint sets them): how its
 * answers and its notifications misbehave, as real providers sometimes do. Each fault applies to the next `count`
 * answers or notifications, then the sandbox behaves again. Kept in memory: they are test instruments, set by the
 * test that needs them, and a restart clears them.
 */
export interface AnswerFaults {
  /** Added before answering (the sandbox has already acted). */
  latencyMs?: number;
  /** Answer with the provider's system error (HTTP 5xx / Alipay `20000`) without acting. */
  error?: boolean;
  /** Act, then never answer (the connection is held until the caller gives up, then dropped). */
  timeout?: boolean;
}

export interface NotificationFaults {
  /** Never send it (the provider "loses" it; only a query finds the outcome). */
  drop?: boolean;
  /** Send it this many times in all. */
  duplicate?: number;
  /** Hold it this long before the first delivery. */
  delayMs?: number;
  /** Deliver it after the next notification instead of before (an out-of-order pair). */
  reorder?: boolean;
  /** Change one byte of the named part before sending (the signature stays as it was). */
  tamper?: 'signature' | 'amount' | 'ciphertext' | 'tag';
}

export interface SandboxFaultSettings {
  answers?: AnswerFaults & { count?: number };
  notifications?: NotificationFaults & { count?: number };
  /** Divides the provider's retry schedule (60 makes an hour a minute), so retries can be watched in tests. */
  retryScheduleDivisor?: number;
}

export class SandboxFaults {
  #answers: AnswerFaults = {};
  #answersLeft = 0;
  #notifications: NotificationFaults = {};
  #notificationsLeft = 0;
  retryScheduleDivisor = 1;

  set(settings: SandboxFaultSettings): void {
    if (settings.answers !== undefined) {
      const { count, ...faults } = settings.answers;
      this.#answers = faults;
      this.#answersLeft = count ?? 1;
    }
    if (settings.notifications !== undefined) {
      const { count, ...faults } = settings.notifications;
      this.#notifications = faults;
      this.#notificationsLeft = count ?? 1;
    }
    if (settings.retryScheduleDivisor !== undefined) this.retryScheduleDivisor = Math.max(1, settings.retryScheduleDivisor);
  }

  reset(): void {
    this.#answers = {};
    this.#answersLeft = 0;
    this.#notifications = {};
    this.#notificationsLeft = 0;
    this.retryScheduleDivisor = 1;
  }

  /** The faults for this answer (and counts it), or none. */
  nextAnswer(): AnswerFaults {
    if (this.#answersLeft <= 0) return {};
    this.#answersLeft -= 1;
    return this.#answers;
  }

  /** The faults for the notification being queued now (and counts it), or none. */
  nextNotification(): NotificationFaults {
    if (this.#notificationsLeft <= 0) return {};
    this.#notificationsLeft -= 1;
    return this.#notifications;
  }

  /** A delay of the provider's schedule, compressed by the divisor. */
  scaled(delayMs: number): number {
    return Math.round(delayMs / this.retryScheduleDivisor);
  }
}

/**
 * How a sandbox sends a notification to Coffer over HTTP (test mode: Coffer's own public listener, trusted by its
 * certificate). Returns what Coffer answered; a network failure throws, and counts as not delivered.
 */
export type NotificationSender = (url: string, request: { headers: Record<string, string>; body: string }) => Promise<{ statusCode: number; body: string }>;
