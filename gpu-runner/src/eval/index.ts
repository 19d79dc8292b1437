export { runEval, loadDataset, EVAL_METHODS, type EvalConfig, type EvalProgress } from "./run-eval";
export { selectQuestions, categoryName, evidenceTurns, DATASETS, type Dataset, type EvalQuestion, type QuestionSelection } from "./questions";
export { teacherForced, meanKl, logSoftmax } from "./fidelity";
export * from "./report";
