/**
 * Answering from episode caches (DESIGN.md §1, stage 3): embed the question, pick the episode whose
 * centroid is nearest by cosine, load that cache, append the question and decode. The cache on disk
 * is never changed.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { EpicacheError, nearestCentroid } from "@epicache/shared";
import type { OnnxEmbedder } from "../embedder";
import { generate, type ChatModel } from "../model";
import { chatFrame } from "../press";
import { questionPrompt } from "./answer-prompt";
import { decodeCache, readManifest } from "./episode-dir";

export interface AskResult {
  episode: number;
  /** Cosine of the question to every episode centroid. */
  cosines: number[];
  answer: string;
}

export async function askEpisodes(
  model: ChatModel,
  embedder: OnnxEmbedder,
  dir: string,
  question: string,
  opts: { maxTokens?: number; dateHint?: boolean; onText?: (text: string) => void } = {},
): Promise<AskResult> {
  if (question.trim() === "") throw new EpicacheError("invalid_argument", "the question is empty");
  const manifest = readManifest(dir);
  if (manifest.model.fingerprint !== model.fingerprint) {
    throw new EpicacheError("store_invalid", `${dir} was built with another model (${manifest.model.path}, fingerprint ${manifest.model.fingerprint}); this one is ${model.fingerprint}`);
  }
  if (manifest.embedder.modelId !== embedder.modelId) {
    throw new EpicacheError("store_invalid", `${dir} was routed with ${manifest.embedder.modelId}; this embedder is ${embedder.modelId}`);
  }
  const [q] = await embedder.embed([question]);
  const { index, cosines } = nearestCentroid(q, manifest.episodes.map((e) => Float32Array.from(e.centroid)));
  const episode = manifest.episodes[index];
  const file = join(dir, episode.file);
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new EpicacheError("store_invalid", `${file}: ${(e as Error).message}`);
  }
  const cache = decodeCache(bytes, manifest.model, file);
  const prompt = questionPrompt(chatFrame(model.tokenizer), question, { dateHint: opts.dateHint });
  let answer = "";
  for await (const t of generate(model, prompt, { maxTokens: opts.maxTokens ?? 64, cache })) {
    answer += t.text;
    opts.onText?.(t.text);
  }
  return { episode: episode.id, cosines: Array.from(cosines), answer: answer.trim() };
}
