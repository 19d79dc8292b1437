export * from "./block-prefill";
export * from "./layer-budgets";
export * from "./calibrate";
export { calibrationText } from "./calibration-text";
export * from "./sensitivity-profile";
export * from "./positions";
