/**
 * Answering questions from stored versions: the version's manifest (kept, since a version never
 * changes; concurrent questions share one read), its episode's cache (loaded once, shared), and
 * generation into a copy of it, taking its turn on the model.
 */
import { LRUCache } from "lru-cache";
import { EpicacheError, manifestKey } from "@epicache/shared";
import { EpisodeStore, LoadedEpisodes, questionPrompt, type EpisodeManifest } from "../episodes";
import { ANSWER_ROOM, generate, type ChatModel } from "../runtime";
import { chatModelRef } from "../model-registry";
import { chatFrame } from "../press";
import type { RunnerMetrics } from "./metrics";
import type { ModelSlots } from "./model-slots";

export interface GenerateInput {
  tenant: string;
  conversation: string;
  version: string;
  episode: number;
  question: string;
  maxTokens: number;
  dateHint: boolean;
}

export interface GenerateOutput {
  answer: string;
  tokens: number;
  timings: { queuedMs: number; loadMs: number; generateMs: number };
}

/** Manifests kept (a version never changes; the least recently used goes first past this many). */
const MANIFESTS_KEPT = 10_000;

type ManifestRef = { tenant: string; conversation: string; version: string };

export class Answers {
  // A failed read is not kept: the next question reads again.
  private readonly manifests: LRUCache<string, EpisodeManifest, ManifestRef>;

  constructor(
    private readonly model: ChatModel,
    store: EpisodeStore,
    readonly loaded: LoadedEpisodes,
    private readonly slots: ModelSlots,
    private readonly metrics: RunnerMetrics,
  ) {
    this.manifests = new LRUCache({
      max: MANIFESTS_KEPT,
      fetchMethod: (_key, _stale, { context: r }) =>
        store.readManifest(r.tenant, r.conversation, r.version),
    });
  }

  async generate(
    input: GenerateInput,
    onText?: (text: string) => void | Promise<void>,
  ): Promise<GenerateOutput> {
    const t0 = performance.now();
    const manifest = await this.manifest(input.tenant, input.conversation, input.version);
    if (input.episode >= manifest.episodes.length) {
      throw new EpicacheError(
        "invalid_argument",
        `episode ${input.episode} is not in version ${input.version} (episodes 0 … ${manifest.episodes.length - 1})`,
      );
    }
    if (manifest.model.fingerprint !== this.model.fingerprint) {
      throw new EpicacheError(
        "model_mismatch",
        `version ${manifest.version} was built with model ${manifest.model.id} (fingerprint ${manifest.model.fingerprint}); this runner serves ${chatModelRef(this.model).id} (fingerprint ${this.model.fingerprint})`,
      );
    }
    const base = await this.loaded.get(manifest, input.episode);
    const t1 = performance.now();
    return this.slots.run("generate", async () => {
      const t2 = performance.now();
      const prompt = questionPrompt(chatFrame(this.model.tokenizer), input.question, {
        dateHint: input.dateHint,
      });
      // The loaded cache is shared: the question and answer go into a copy, sized as generate sizes
      // it (whatever maxTokens is: an answer given more tokens begins as a shorter one would).
      const cache = base.clone(prompt.length + ANSWER_ROOM);
      let answer = "";
      let tokens = 0;
      for await (const t of generate(this.model, prompt, { maxTokens: input.maxTokens, cache })) {
        answer += t.text;
        tokens++;
        await onText?.(t.text);
      }
      const generateMs = performance.now() - t2;
      this.metrics.tokens.inc(tokens);
      this.metrics.generateSeconds.inc(generateMs / 1000);
      if (tokens > 0) this.metrics.tokensPerSecond.set(tokens / (generateMs / 1000));
      return {
        answer: answer.trim(),
        tokens,
        timings: { queuedMs: t2 - t1, loadMs: t1 - t0, generateMs },
      };
    });
  }

  private manifest(
    tenant: string,
    conversation: string,
    version: string,
  ): Promise<EpisodeManifest> {
    return this.manifests.forceFetch(manifestKey(tenant, conversation, version), {
      context: { tenant, conversation, version },
    });
  }
}
