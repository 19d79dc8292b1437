/** The whole stack on one machine (`npm start`, start.ts): the runner and the edge under wrangler dev. */
export {
  adminToken,
  startEdgeDev,
  startStack,
  type EdgeDevOptions,
  type RunningEdge,
  type RunningStack,
  type StackOptions,
} from "./start-stack";
