export { runEval, loadDataset, EVAL_METHODS, HISTORIES, type EvalConfig, type EvalProgress, type History } from "./run-eval";
export { selectQuestions, categoryName, evidenceTurns, DATASETS, type Dataset, type EvalQuestion, type QuestionSelection } from "./questions";
export { teacherForced, meanKl, logSoftmax } from "./fidelity";
export * from "./report";
export { pairedBootstrap, type PairedInterval } from "./bootstrap";
