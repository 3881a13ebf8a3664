// The English tokenizer used for every review: deterministic rules close to spaCy's `en` tokenizer on
// this kind of text. Pure functions only (it runs inside the piscina workers, see tokenize-task.ts).
//
// Rules, applied in order:
//  1. Markup: every `<br />` (also `<br>`, `<br/>`, any case) becomes a space.
//  2. Lowercase (String.prototype.toLowerCase, locale-independent); curly apostrophes ’ ‘ become '.
//  3. Words are runs of letters, combining marks and digits (any script: "café", "naïve", "2001").
//     Numbers keep inner decimal points and thousands commas: "7.5", "1,000".
//  4. Clitics are split off a word and kept as their own token, like spaCy:
//     "don't" → do n't, "can't" → ca n't, "it's" → it 's, "i'm" → i 'm, "we'll" → we 'll,
//     "they're" → they 're, "i've" → i 've, "he'd" → he 'd. Other inner apostrophes stay in the word
//     ("o'clock", "d'artagnan").
//  5. Punctuation and symbols are split off one character at a time ("!!" → ! !, "well-made" → well - made),
//     except that runs of dots are one token ("..." stays "...").
//  6. Whitespace separates and is dropped. An empty or all-markup review has no tokens.

const BR = /<br\s*\/?>/gi;
const CURLY = /[\u2018\u2019]/g;
// word (with optional 'suffix) | decimal number | dot run | any other single non-space char
const TOKEN = /[\p{L}\p{M}\p{N}]+(?:'[\p{L}\p{M}]+)?|\.{2,}|[^\s\p{L}\p{M}\p{N}]/gu;
const CLITICS = new Set(["'s", "'m", "'re", "'ve", "'d", "'ll"]);
const NUMBER = /\p{N}+(?:[.,]\p{N}+)+/uy;

/** Normalise a review before matching tokens: markup removed, lowercase, straight apostrophes. */
export function normalize(text: string): string {
  return text.replace(BR, " ").toLowerCase().replace(CURLY, "'");
}

/**
 * Calls `emit` once per token of `text`, in order. The allocation-light core used by the workers;
 * `tokenize` collects the same tokens into an array.
 */
export function forEachToken(text: string, emit: (token: string) => void): void {
  const s = normalize(text);
  TOKEN.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = TOKEN.exec(s)) !== null) {
    const tok = m[0];
    const c = tok.charCodeAt(0);
    if (c >= 48 && c <= 57) {
      // a number may continue with ".5" or ",000": take the longest decimal form
      NUMBER.lastIndex = m.index;
      const n = NUMBER.exec(s);
      if (n !== null && n[0].length > tok.length) {
        emit(n[0]);
        TOKEN.lastIndex = m.index + n[0].length;
        continue;
      }
    }
    const apo = tok.indexOf("'");
    if (apo > 0) {
      const suffix = tok.slice(apo);
      if (suffix === "'t" && tok.charCodeAt(apo - 1) === 110 /* n */ && apo > 1) {
        emit(tok.slice(0, apo - 1)); // "don't" → "do" + "n't"
        emit("n't");
        continue;
      }
      if (CLITICS.has(suffix)) {
        emit(tok.slice(0, apo));
        emit(suffix);
        continue;
      }
    }
    emit(tok);
  }
}

/** The tokens of one review (see the rules at the top of this file). */
export function tokenize(text: string): string[] {
  const out: string[] = [];
  forEachToken(text, (t) => out.push(t));
  return out;
}
