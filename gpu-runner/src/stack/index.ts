/** The whole stack on one machine (`npm start`). */
export { adminToken, startStack, type RunningStack, type StackOptions } from "./start-stack";
