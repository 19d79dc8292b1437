/** The whole stack on one machine (`npm start`). */
export { adminToken, startEdgeDev, startStack, type EdgeDevOptions, type RunningEdge, type RunningStack, type StackOptions } from "./start-stack";
