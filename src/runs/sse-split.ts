// Server-sent events as a run records them: the stream cut into events at blank lines (the WHATWG
// event-stream format: LF, CRLF or CR line ends), each event kept as its lines without the `id:` field,
// which the run log replaces by its own sequence (so a client resumes from Last-Event-ID whatever ids
// the agent sent). Pure.

export interface SplitResult {
  /** Complete events, each as its lines (comments kept, `id:` lines dropped), without the blank line. */
  events: string[][];
  /** What follows the last blank line: the start of the next event. */
  rest: string;
}

/** Cuts `text` (what was left over before, plus a new chunk) into complete events and the rest. */
export function splitEvents(text: string): SplitResult {
  const events: string[][] = [];
  let lines: string[] = [];
  let start = 0;
  let i = 0;
  let lastEventEnd = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c !== 10 && c !== 13) {
      i++;
      continue;
    }
    // A CR at the very end may be the first half of a CRLF: wait for the next chunk.
    if (c === 13 && i === text.length - 1) break;
    const line = text.slice(start, i);
    i += c === 13 && text.charCodeAt(i + 1) === 10 ? 2 : 1;
    start = i;
    if (line === '') {
      if (lines.length > 0) events.push(lines);
      lines = [];
      lastEventEnd = i;
    } else if (!isIdField(line)) {
      lines.push(line);
    }
  }
  return { events, rest: text.slice(lastEventEnd) };
}

function isIdField(line: string): boolean {
  return line === 'id' || line.startsWith('id:');
}

/** One event as sent to a client of /runs/{id}/stream: its sequence id first, then its lines. */
export function formatEvent(id: number, lines: readonly string[]): string {
  return `id: ${id}\n${lines.join('\n')}\n\n`;
}
