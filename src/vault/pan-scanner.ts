import { cardNumberDigitsMax } from './card-number.ts';
import { vaultLimits, type VaultLimits } from './vault-limits.ts';

/**
 * Finds card numbers where none should be: database dumps, logs, API responses, backups. Tests use it to prove
 * that a full card number (PAN) never leaks, so it reports where a number is and never what it is.
 *
 *   scanForCardNumbers(input: string | Uint8Array, limits?: VaultLimits): PanScanResult
 *   maskCardNumbers(text: string, limits?: VaultLimits): string
 *
 * What counts as a card number: 13 to 19 digits that pass the Luhn check, written together or in groups separated
 * by one space or one dash each ("4242 4242 4242 4242", "3782-822463-10005", "4222 2222 2222 2"). In a longer
 * chain of such groups ("amount 1000 4242 4242 4242 4242") every sequence of whole groups is a candidate: from
 * each group the longest valid one wins, and matches never overlap. An unbroken run of more than 19 digits
 * (nanosecond timestamps, big integers, hashes) is not a card number, nor is any part of it. Encoded numbers (hex,
 * base64) are not decoded. Letters next to the digits do not matter, so "pan4242424242424242" is found. Luhn is a
 * one-digit checksum: about one random candidate in ten passes, so long space-separated lists of small numbers
 * give false positives; a missed card number would be worse.
 *
 * Speed: a regular expression skips text that cannot hold a card number; the rest is read once, keeping about 19
 * digits of state, so memory does not grow with the input. A Uint8Array is read as latin1, one character per
 * byte, so its offsets are byte offsets. 32 MB of log text takes about a quarter of a second.
 */
export interface PanMatch {
  /** Where the number starts: a byte offset in a Uint8Array, a UTF-16 index in a string. */
  offset: number;
  /** How many bytes or characters it spans, separators included. */
  length: number;
  /** How many digits it has. */
  digits: number;
  /** All but the last four digits replaced by `*`, separators removed: `************4242`. */
  masked: string;
}

export interface PanScanResult {
  matches: PanMatch[];
  /** `panScanMatchesMax` matches were found and the scan stopped there. */
  truncated: boolean;
}

const panDigitsMin = 13;
const doubled = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9];
// Thirteen digits, each pair separated by at most one space or dash: the least a card number needs. The regex
// engine skips text without such a window quickly; only chains holding one are examined, by hand. The count is
// bounded, so the engine's backtracking stack stays small (an unbounded version overflowed on a 50 MB chain).
const windowPattern = /[0-9](?:[ -]?[0-9]){12}/g;

/** A group of digits: `text.slice(start, end)`. */
interface Group {
  start: number;
  end: number;
}

export function scanForCardNumbers(input: string | Uint8Array, limits: VaultLimits = vaultLimits): PanScanResult {
  const text = typeof input === 'string' ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('latin1');
  const chain = new Chain(text, limits.panScanMatchesMax + 1);
  const windows = new RegExp(windowPattern);
  for (let found = windows.exec(text); found !== null && !chain.full(); found = windows.exec(text)) {
    windows.lastIndex = scanChain(text, chainStart(text, found.index), chain);
  }
  const truncated = chain.matches.length > limits.panScanMatchesMax;
  return { matches: truncated ? chain.matches.slice(0, limits.panScanMatchesMax) : chain.matches, truncated };
}

/**
 * The text with every card number in it replaced by its masked form, for text that is about to leave the process
 * and may echo what a caller sent (an error message quoting an id, a logged URL). Should the text hold more
 * candidates than the scanner reports, every digit is masked.
 */
export function maskCardNumbers(text: string, limits: VaultLimits = vaultLimits): string {
  const { matches, truncated } = scanForCardNumbers(text, limits);
  if (truncated) return text.replace(/[0-9]/g, '*');
  let masked = '';
  let from = 0;
  for (const match of matches) {
    masked += text.slice(from, match.offset) + match.masked;
    from = match.offset + match.length;
  }
  return matches.length === 0 ? text : masked + text.slice(from);
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

function isSeparator(code: number): boolean {
  return code === 0x20 || code === 0x2d;
}

/** Where the chain of digit groups holding the digit at `at` begins (a window may start inside a chain). */
function chainStart(text: string, at: number): number {
  let start = at;
  while (start > 0) {
    if (isDigit(text.charCodeAt(start - 1))) start -= 1;
    else if (start > 1 && isSeparator(text.charCodeAt(start - 1)) && isDigit(text.charCodeAt(start - 2))) start -= 2;
    else break;
  }
  return start;
}

/** Feeds the groups of the chain starting at `start` to `chain`, decides them all, and returns where it ends. */
function scanChain(text: string, start: number, chain: Chain): number {
  let groupStart = start;
  while (groupStart < text.length && !chain.full()) {
    let groupEnd = groupStart;
    while (groupEnd < text.length && isDigit(text.charCodeAt(groupEnd))) groupEnd += 1;
    chain.add({ start: groupStart, end: groupEnd });
    if (!isSeparator(text.charCodeAt(groupEnd)) || !isDigit(text.charCodeAt(groupEnd + 1))) {
      groupStart = groupEnd;
      break;
    }
    groupStart = groupEnd + 1;
  }
  chain.settleAll();
  return groupStart;
}

/**
 * The groups of the current chain whose candidates are not decided yet. A candidate starting at the front group
 * is decided once the chain behind it holds more than 19 digits, since no later group can join it; so the chain
 * never holds much more than 19 digits, and memory does not grow with the input.
 */
class Chain {
  readonly matches: PanMatch[] = [];
  readonly #text: string;
  readonly #matchesMax: number;
  readonly #groups: Group[] = [];
  /** The first undecided group. */
  #head = 0;
  #digits = 0;

  constructor(text: string, matchesMax: number) {
    this.#text = text;
    this.#matchesMax = matchesMax;
  }

  full(): boolean {
    return this.matches.length >= this.#matchesMax;
  }

  add(group: Group): void {
    if (group.end - group.start > cardNumberDigitsMax) {
      // Too long to be, or to be part of, a card number: it ends the chain.
      this.settleAll();
      return;
    }
    this.#groups.push(group);
    this.#digits += group.end - group.start;
    this.#settle(cardNumberDigitsMax + 1);
  }

  settleAll(): void {
    this.#settle(1);
  }

  /** Decides front groups while the chain holds at least `digitsKept` digits. */
  #settle(digitsKept: number): void {
    while (this.#head < this.#groups.length && this.#digits >= digitsKept) {
      const last = this.#longestValid(this.#head);
      const through = last ?? this.#head;
      if (last !== undefined) this.#record(this.#head, last);
      for (; this.#head <= through; this.#head += 1) {
        const group = this.#groups[this.#head];
        if (group !== undefined) this.#digits -= group.end - group.start;
      }
    }
    // Decided groups are dropped in bulk, not one shift at a time.
    if (this.#head === this.#groups.length) {
      this.#groups.length = 0;
      this.#head = 0;
    } else if (this.#head > 64) {
      this.#groups.splice(0, this.#head);
      this.#head = 0;
    }
  }

  /**
   * The last group of the longest sequence of whole groups from `first` with 13 to 19 digits that passes Luhn.
   * Luhn doubles every second digit counted from the right, which moves as digits are added; two running sums,
   * one for each parity of the length, give the check of every prefix in one pass.
   */
  #longestValid(first: number): number | undefined {
    let count = 0;
    let sumIfEvenLength = 0;
    let sumIfOddLength = 0;
    let best: number | undefined;
    for (let index = first; index < this.#groups.length; index += 1) {
      const group = this.#groups[index];
      if (group === undefined || count + group.end - group.start > cardNumberDigitsMax) break;
      for (let at = group.start; at < group.end; at += 1) {
        const digit = this.#text.charCodeAt(at) - 48;
        const twice = doubled[digit] ?? 0;
        sumIfEvenLength += count % 2 === 0 ? twice : digit;
        sumIfOddLength += count % 2 === 0 ? digit : twice;
        count += 1;
      }
      if (count >= panDigitsMin && (count % 2 === 0 ? sumIfEvenLength : sumIfOddLength) % 10 === 0) best = index;
    }
    return best;
  }

  #record(first: number, last: number): void {
    const start = this.#groups[first]?.start ?? 0;
    const end = this.#groups[last]?.end ?? 0;
    const digits = this.#text.slice(start, end).replace(/[ -]/g, '');
    this.matches.push({ offset: start, length: end - start, digits: digits.length, masked: '*'.repeat(digits.length - 4) + digits.slice(-4) });
  }
}
