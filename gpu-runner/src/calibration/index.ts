/**
 * Layer allocation and its calibration: how much each layer suffers when squeezed (sensitivity.ts,
 * on a generated chat, calibration-text.ts), the profiles saved beside a model
 * (sensitivity-profile.ts), the rules that turn a profile into per-layer budgets (layer-budgets.ts),
 * and measuring, saving and choosing them for a build (calibrate.ts). Block-wise prefill (prefill/)
 * takes the budgets.
 */
export * from "./sensitivity";
export * from "./layer-budgets";
export { calibrationText } from "./calibration-text";
export * from "./sensitivity-profile";
export {
  allocateLayers,
  calibrate,
  calibrationTokens,
  defaultAllocation,
  profileFor,
  SHARPNESS_CANDIDATES,
  type CalibrationOptions,
} from "./calibrate";
