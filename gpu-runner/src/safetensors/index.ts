export {
  openSafetensors,
  parseSafetensors,
  toFloat32,
  SAFETENSORS_DTYPES,
  MAX_HEADER_BYTES,
} from "./reader";
export type { SafetensorsDtype, SafetensorsFile, SafetensorsTensorInfo } from "./reader";
export {
  openSafetensorsCheckpoint,
  INDEX_FILE,
  type SafetensorsCheckpoint,
  type CheckpointTensor,
} from "./checkpoint";
