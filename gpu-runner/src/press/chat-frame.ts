/**
 * Where a conversation sits in the chat template: the history is the content of one user turn, left
 * open while it is prefilled; a scoring prompt or a question closes that turn and opens the
 * assistant's. For ChatML:
 *
 *   open            <|im_start|>system\n…<|im_end|>\n<|im_start|>user\n
 *   history         Below is a conversation between …
 *   close(text)     \n\n{text}<|im_end|>\n<|im_start|>assistant\n
 */
import { EpicacheError } from "@epicache/shared";
import type { TextTokenizer } from "../tokenizer";

const SENTINEL = "\u0001EPICACHE-CONTENT\u0001";

export interface ChatFrame {
  /** Tokens before the user turn's content (BOS, system prompt, user header). */
  open: readonly number[];
  /** Plain text as tokens (control-token text stays text). */
  text(s: string): number[];
  /** `text` appended to the open user turn, then the end of the turn and the assistant header. */
  close(text: string): number[];
  /**
   * History text as tokens, encoded line by line (each line break its own piece). A pre-tokeniser
   * never joins a line break with the next line's letters, so for SmolLM2 this is exactly `text(s)`
   * (checked on every LoCoMo dev and REALTALK conversation); encoded this way, the tokens of a history
   * and of what follows it always add up to those of the longer history, which updates rely on.
   */
  history(s: string): number[];
}

export function chatFrame(tokenizer: TextTokenizer): ChatFrame {
  if (!tokenizer.hasChatTemplate)
    throw new EpicacheError(
      "model_unsupported",
      "the model has no chat template to frame a conversation with",
    );
  const rendered = tokenizer.renderChat([{ role: "user", content: SENTINEL }], {
    addGenerationPrompt: true,
  });
  const at = rendered.indexOf(SENTINEL);
  if (at < 0 || rendered.indexOf(SENTINEL, at + 1) >= 0)
    throw new EpicacheError(
      "model_unsupported",
      "the chat template does not place the user's content once",
    );
  const head = rendered.slice(0, at);
  const tail = rendered.slice(at + SENTINEL.length);
  const open = tokenizer.encodePrompt(head, { parseSpecial: true });
  const tailIds = tokenizer.encode(tail, { parseSpecial: true });
  return {
    open,
    text: (s) => tokenizer.encode(s),
    close: (s) => [...tokenizer.encode(s), ...tailIds],
    history: (s) =>
      s.split(/(\n)/).flatMap((piece) => (piece === "" ? [] : tokenizer.encode(piece))),
  };
}
