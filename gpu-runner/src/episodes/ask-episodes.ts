/**
 * Answering from episode caches (docs/design.md §1, stage 3): embed the question, route it to an episode
 * by the manifest's rule (shared routeQuestion), load that cache, append the question and decode.
 * The stored cache is never changed.
 */
import {
  EpicacheError,
  routeQuestion,
  type RoutedQuestion,
  type RoutingRule,
} from "@epicache/shared";
import type { OnnxEmbedder } from "../embedder";
import { generate, type ChatModel } from "../runtime";
import { chatFrame } from "../press";
import { questionPrompt } from "./answer-prompt";
import type { EpisodeStore } from "./episode-store";
import { manifestRouting, type EpisodeManifest } from "./manifest";

export interface AskResult {
  version: string;
  episode: number;
  /** The manifest's routing rule. */
  rule: RoutingRule;
  /** Per episode, what the rule compared (shared RoutedQuestion.scores: cosines, votes or BM25 scores). */
  scores: number[];
  /** Whose scores they are: the manifest's rule, or `window` when `lexical` fell back to it. */
  scoredBy: RoutedQuestion["scoredBy"];
  answer: string;
}

export async function askEpisodes(
  model: ChatModel,
  embedder: OnnxEmbedder,
  store: EpisodeStore,
  manifest: EpisodeManifest,
  question: string,
  opts: { maxTokens?: number; dateHint?: boolean; onText?: (text: string) => void } = {},
): Promise<AskResult> {
  if (question.trim() === "") throw new EpicacheError("invalid_argument", "the question is empty");
  const where = `${store.location} ${manifest.tenant}/${manifest.conversation} version ${manifest.version}`;
  if (manifest.model.fingerprint !== model.fingerprint) {
    throw new EpicacheError(
      "model_mismatch",
      `${where} was built with model ${manifest.model.id} (fingerprint ${manifest.model.fingerprint}); this one is ${model.fingerprint}`,
    );
  }
  if (manifest.embedder.modelId !== embedder.modelId) {
    throw new EpicacheError(
      "store_invalid",
      `${where} was routed with ${manifest.embedder.modelId}; this embedder is ${embedder.modelId}`,
    );
  }
  const [q] = await embedder.embed([question]);
  const { rule, data } = manifestRouting(manifest);
  const routed = routeQuestion(rule, { vector: q, text: question }, data);
  const episode = manifest.episodes[routed.episode];
  const cache = await store.loadEpisode(manifest, episode.id);
  const prompt = questionPrompt(chatFrame(model.tokenizer), question, { dateHint: opts.dateHint });
  let answer = "";
  for await (const t of generate(model, prompt, { maxTokens: opts.maxTokens ?? 64, cache })) {
    answer += t.text;
    opts.onText?.(t.text);
  }
  return {
    version: manifest.version,
    episode: episode.id,
    rule,
    scores: Array.from(routed.scores),
    scoredBy: routed.scoredBy,
    answer: answer.trim(),
  };
}
