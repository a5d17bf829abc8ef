/** A module whose pipeline is its named `pipeline` export, with no default export. */
export { default as pipeline } from "./tracked.ts"
