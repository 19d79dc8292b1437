/**
 * Measuring and saving a model's layer sensitivity (`npx epicache calibrate`, and `build` when no
 * profile exists yet).
 */
import type { ChatModel } from "../model";
import { chatModelRef } from "../models";
import { calibrationText, loadProfile, measureSensitivity, saveProfile, type SavedProfile } from "../prefill";
import { chatFrame, streamingLlmPolicy } from "../press";

export interface CalibrationOptions {
  /** Entries per KV head in the squeezed run. Default 1024. */
  budget?: number;
  /** Default 512. */
  blockSize?: number;
  /** Sink tokens of the squeeze. Default 128 (StreamingLLM's). */
  sinks?: number;
  /** The calibration text; default a generated chat of about 2,400 words. */
  text?: string;
  log?: (msg: string) => void;
}

export async function calibrate(model: ChatModel, opts: CalibrationOptions = {}): Promise<{ profile: SavedProfile; path: string }> {
  const budget = opts.budget ?? 1024;
  const blockSize = opts.blockSize ?? 512;
  const sinks = Math.min(opts.sinks ?? 128, budget - 1);
  const frame = chatFrame(model.tokenizer);
  let tokens = [...frame.open, ...frame.text(opts.text ?? calibrationText())];
  // The squeeze must bite: at least a few blocks beyond the budget.
  const words = 2400;
  for (let k = 2; tokens.length < budget + 2 * blockSize && !opts.text; k++) tokens = [...frame.open, ...frame.text(calibrationText(words * k))];
  opts.log?.(`calibrating on ${tokens.length} tokens: full attention, then squeezed to ${budget} entries per head (${sinks} sinks) in blocks of ${blockSize}`);
  const measured = await measureSensitivity(model.decoder, tokens, { budget, blockSize, squeeze: streamingLlmPolicy(sinks) });
  const profile: SavedProfile = {
    ...measured, fingerprint: model.fingerprint, model: chatModelRef(model).id, budget, blockSize, sinks, tokens: tokens.length, measuredAt: new Date().toISOString(),
  };
  return { profile, path: saveProfile(model.path, profile) };
}

/** The saved profile, or a new one measured with the defaults. */
export async function profileFor(model: ChatModel, log?: (msg: string) => void): Promise<SavedProfile> {
  return loadProfile(model.path, model.fingerprint, model.config.numLayers) ?? (await calibrate(model, { log })).profile;
}
