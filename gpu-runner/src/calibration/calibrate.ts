/**
 * Measuring and saving a model's layer profiles (`npx epicache calibrate`, and `build` the first time
 * an allocation needs a profile at its budget), and the layer budgets a build uses.
 */
import { createHash } from "node:crypto";
import type { ChatModel } from "../runtime";
import { chatModelRef, MODELS } from "../model-registry";
import { QUESTION_ROOM } from "../prefill";
import { chatFrame, streamingLlmPolicy, STREAMING_SINKS } from "../press";
import { calibrationText } from "./calibration-text";
import { layerBudgets, OFFICIAL_POWER } from "./layer-budgets";
import { keySimilarity, outputReference, outputSensitivity, squeezedKl } from "./sensitivity";
import {
  budgetsFromProfile,
  loadProfiles,
  PROTOCOL_OF,
  profileKey,
  saveProfile,
  shippedProfiles,
  type AllocMode,
  type LayerProfile,
  type SavedProfiles,
  type SensitivityProtocol,
} from "./sensitivity-profile";

export interface CalibrationOptions {
  protocol: SensitivityProtocol;
  /** Entries per KV head in the squeezed runs (M). */
  budget: number;
  /** Block of the "output" protocol's prefill (the build's). Default 512. */
  blockSize?: number;
  /** Sink tokens of the squeeze. Default 128 (StreamingLLM's and the authors'). */
  sinks?: number;
  /** The calibration text; default a generated chat. Never evaluation data. */
  text?: string;
  /** The α candidates of the "output" protocol (0, uniform budgets, is always tried). */
  sharpness?: number[];
  log?: (msg: string) => void;
  /** Runs done of the calibration's runs (prefills of the whole text), after each. */
  onProgress?: (done: number, total: number) => void;
}

/** α candidates for budgets ∝ KL_ℓ^α. */
export const SHARPNESS_CANDIDATES = [0, 0.25, 0.5, 1, 2];

/**
 * Calibration tokens: the text in the chat frame, as long as the model's window allows less room for
 * a question (the full run must stay inside the window), at most 16,384 tokens (the authors' length).
 */
export function calibrationTokens(model: ChatModel, text?: string): number[] {
  const frame = chatFrame(model.tokenizer);
  const length = Math.min(model.config.contextLength, 16384) - QUESTION_ROOM;
  let words = 2400;
  let tokens = [...frame.open, ...frame.text(text ?? calibrationText(words))];
  while (tokens.length < length && text === undefined) {
    words *= 2;
    tokens = [...frame.open, ...frame.text(calibrationText(words))];
  }
  return tokens.slice(0, length);
}

export async function calibrate(
  model: ChatModel,
  opts: CalibrationOptions,
): Promise<{ profile: LayerProfile; path: string }> {
  const t0 = performance.now();
  const { budget, protocol } = opts;
  const blockSize = opts.blockSize ?? 512;
  const sinks = Math.max(1, Math.min(opts.sinks ?? STREAMING_SINKS, Math.floor(budget / 2)));
  const tokens = calibrationTokens(model, opts.text);
  // The default text's label as saved profiles have carried it since it was written (the file has
  // moved to calibration/; the text is the same).
  const source =
    opts.text === undefined
      ? "generated chat (prefill/calibration-text.ts)"
      : `sha256:${createHash("sha256").update(opts.text).digest("hex").slice(0, 16)}`;
  const squeeze = streamingLlmPolicy(sinks);
  const L = model.config.numLayers;
  let profile: LayerProfile;
  if (protocol === "keys") {
    const W = 2 * (budget - sinks);
    opts.log?.(
      `calibrating (keys, the authors' protocol) on ${tokens.length} tokens: full attention, then blocks of ${W} seeing ${sinks} sinks and the previous block's last ${W / 2}`,
    );
    opts.onProgress?.(0, 1);
    const signal = await keySimilarity(model.decoder, tokens, { budget, sinks, squeeze });
    opts.onProgress?.(1, 1);
    profile = {
      protocol,
      budget,
      signal,
      sharpness: OFFICIAL_POWER,
      selection: [],
      params: { tokens: tokens.length, blockSize: W, sinks, text: source, span: 100 },
      seconds: 0,
      measuredAt: "",
    };
  } else {
    // Positions after the first eviction (the block after the first one to pass the budget).
    const from = (Math.floor(budget / blockSize) + 1) * blockSize;
    const every = Math.max(1, Math.floor((tokens.length - from) / 256));
    opts.log?.(
      `calibrating (output) on ${tokens.length} tokens: ${L} runs each squeezing one layer to ${budget} entries (${sinks} sinks + recent), KL over every ${every}th position from ${from}`,
    );
    const alphas = [...new Set([0, ...(opts.sharpness ?? SHARPNESS_CANDIDATES)])].sort(
      (a, b) => a - b,
    );
    // One full run, one per layer squeezed alone, one per α.
    const runs = 1 + L + alphas.length;
    opts.onProgress?.(0, runs);
    const ref = await outputReference(model.decoder, tokens, { blockSize, from, every });
    opts.onProgress?.(1, runs);
    const signal = await outputSensitivity(model.decoder, ref, budget, squeeze, (l, kl) => {
      opts.log?.(`  layer ${l}: KL ${kl.toFixed(5)}`);
      opts.onProgress?.(2 + l, runs);
    });
    const selection: LayerProfile["selection"] = [];
    for (const alpha of alphas) {
      const kl = await squeezedKl(
        model.decoder,
        ref,
        layerBudgets(signal, budget, { alpha }),
        squeeze,
      );
      selection.push({ sharpness: alpha, kl });
      opts.log?.(`  α ${alpha}: KL ${kl.toFixed(5)} with every layer squeezed`);
      opts.onProgress?.(1 + L + selection.length, runs);
    }
    const best = selection.reduce((a, b) => (b.kl < a.kl ? b : a));
    profile = {
      protocol,
      budget,
      signal,
      sharpness: best.sharpness,
      selection,
      params: { tokens: tokens.length, blockSize, sinks, text: source, every },
      seconds: 0,
      measuredAt: "",
    };
  }
  profile.seconds = (performance.now() - t0) / 1000;
  profile.measuredAt = new Date().toISOString();
  const saved = loadProfiles(model.path, model.fingerprint, chatModelRef(model).id, L);
  return { profile, path: saveProfile(model.path, saved, profile) };
}

/**
 * The profile of a protocol at a budget: the one saved beside the model (`calibrate` writes it), else
 * the one shipped for these weights. At a budget neither has, the nearest measured budget's signal and
 * sharpness, applied at this budget (the log says which; a first build at an unusual budget should not
 * spend a quarter of an hour calibrating). Only a model with no profile of the protocol at all is
 * measured, with the defaults, and saved.
 */
export async function profileFor(
  model: ChatModel,
  protocol: SensitivityProtocol,
  budget: number,
  opts: { log?: (msg: string) => void; shipped?: SavedProfiles | null } = {},
): Promise<LayerProfile> {
  const id = chatModelRef(model).id;
  const L = model.config.numLayers;
  const key = profileKey(protocol, budget);
  const saved = loadProfiles(model.path, model.fingerprint, id, L).profiles;
  const shipped =
    (opts.shipped === undefined ? shippedProfiles(id, model.fingerprint, L) : opts.shipped)
      ?.profiles ?? {};
  const exact = saved[key] ?? shipped[key];
  if (exact) return exact;
  const measured = [...Object.values(saved), ...Object.values(shipped)].filter(
    (p) => p.protocol === protocol,
  );
  if (measured.length === 0)
    return (await calibrate(model, { protocol, budget, log: opts.log })).profile;
  const distance = (p: LayerProfile) => Math.abs(Math.log(p.budget / budget));
  const nearest = measured.reduce((a, b) =>
    distance(b) < distance(a) || (distance(b) === distance(a) && b.budget > a.budget) ? b : a,
  );
  opts.log?.(
    `no ${protocol} profile at budget ${budget}: using the one measured at ${nearest.budget} (\`npx epicache calibrate --protocol ${protocol} --budget ${budget}\` measures this budget's)`,
  );
  return { ...nearest, budget };
}

/** Per-layer budgets for a build: M everywhere, or what the allocation's profile at M gives. */
export async function allocateLayers(
  model: ChatModel,
  alloc: AllocMode,
  budget: number,
  opts: {
    sharpness?: number;
    log?: (msg: string) => void;
    /** Shipped profiles to use (tests); default the registry's for these weights. */
    shipped?: SavedProfiles | null;
  } = {},
): Promise<number[]> {
  if (alloc === "uniform") return Array(model.config.numLayers).fill(budget);
  return budgetsFromProfile(
    await profileFor(model, PROTOCOL_OF[alloc], budget, opts),
    opts.sharpness,
  );
}

/**
 * EpiCache's allocation on this model when a build does not say: the registry's, chosen by the dev
 * evaluation (README, "Layer budgets"); uniform for a model nobody measured.
 */
export function defaultAllocation(model: ChatModel): AllocMode {
  const id = chatModelRef(model).id;
  return MODELS.find((m) => m.id === id)?.allocation ?? "uniform";
}
