/**
 * One nesting limit for every JSON document the coordinator accepts (request
 * bodies, every WebSocket message): deeper input is refused with
 * `400 validation_failed` before anything parses or stores it, so no
 * recursive step (parsing, validation, serialization) can overflow the stack.
 */
export const MAX_JSON_DEPTH = 64;

/** True if `text` (JSON or not) opens more than `max` nested arrays/objects. Linear, no recursion, strings skipped. */
export function jsonTooDeep(text: string, max = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c)
        i++; // backslash: skip the escaped character
      else if (ch === 0x22) inString = false;
    } else if (ch === 0x22) inString = true;
    else if (ch === 0x7b || ch === 0x5b) {
      if (++depth > max) return true;
    } else if (ch === 0x7d || ch === 0x5d) depth--;
  }
  return false;
}
