export {
  runEval,
  loadDataset,
  HISTORIES,
  type EvalConfig,
  type EvalProgress,
  type History,
} from "./run-eval";
export {
  EVAL_METHOD_REGISTRY,
  EVAL_METHODS,
  isEvalMethod,
  resolveEvalMethod,
  type EvalMethod,
  type EvalMethodInfo,
} from "./eval-methods";
export {
  selectQuestions,
  categoryName,
  evidenceTurns,
  DATASETS,
  type Dataset,
  type EvalQuestion,
  type QuestionSelection,
} from "./questions";
export { teacherForced, meanKl, withPrompt } from "./fidelity";
export * from "./report";
export { pairedBootstrap, type PairedInterval } from "./bootstrap";
export { evidenceKept, keptByTurn, turnSpans, type TurnSpans } from "./evidence";
