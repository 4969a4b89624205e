/**
 * A problem in a rule's text, for the analyst who wrote it: what is wrong, and where. Errors are values (the API
 * reports them as one `parameter_invalid` with these details); nothing in the rule language throws on bad input.
 */
export type RuleErrorKind = 'syntax' | 'unknown_attribute' | 'type_mismatch' | 'limit';

/** `offset` counts UTF-16 code units from 0; `line` and `column` count from 1, lines ending at '\n'. */
export interface RulePosition {
  readonly offset: number;
  readonly line: number;
  readonly column: number;
}

export interface RuleError {
  readonly kind: RuleErrorKind;
  readonly message: string;
  readonly position: RulePosition;
  /** Code units the problem spans from `position`; 0 at the end of the text. */
  readonly length: number;
}

/** A stretch of the rule text. */
export interface RuleSpan {
  readonly offset: number;
  readonly length: number;
}

export function positionAt(text: string, offset: number): RulePosition {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i += 1) {
    if (text.charCodeAt(i) === 10) {
      line += 1;
      lineStart = i + 1;
    }
  }
  return { offset, line, column: offset - lineStart + 1 };
}

export function ruleError(text: string, kind: RuleErrorKind, message: string, span: RuleSpan): RuleError {
  return { kind, message, position: positionAt(text, span.offset), length: span.length };
}

/** Errors in text order, each place and message once. */
export function sortErrors(errors: readonly RuleError[]): RuleError[] {
  const seen = new Set<string>();
  const unique = errors.filter((error) => {
    const key = `${error.position.offset}:${error.length}:${error.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return unique.sort((a, b) => a.position.offset - b.position.offset);
}

/** Edit distance (insertions, deletions, substitutions, swaps of neighbours), ignoring case. */
export function editDistance(a: string, b: string): number {
  const left = a.toLowerCase();
  const right = b.toLowerCase();
  let before: number[] = [];
  let previous = Array.from({ length: right.length + 1 }, (_, j) => j);
  for (let i = 1; i <= left.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= right.length; j += 1) {
      const substitution = (previous[j - 1] ?? 0) + (left[i - 1] === right[j - 1] ? 0 : 1);
      let distance = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution);
      if (i > 1 && j > 1 && left[i - 1] === right[j - 2] && left[i - 2] === right[j - 1]) {
        distance = Math.min(distance, (before[j - 2] ?? 0) + 1);
      }
      current.push(distance);
    }
    before = previous;
    previous = current;
  }
  return previous[right.length] ?? 0;
}

/** The candidate nearest to `word`, if it is near enough to be a likely typo (about a third of its letters). */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  // Names in the language are short; a long word is no typo of one, and comparing it would cost for nothing.
  if (word.length > 64) return undefined;
  const allowed = Math.max(1, Math.floor(word.length / 3));
  let best: string | undefined;
  let bestDistance = allowed + 1;
  for (const candidate of candidates) {
    const distance = editDistance(word, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}
