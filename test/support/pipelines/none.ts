/** A module with no pipeline in it, for `--pipeline` to refuse. */
export const notAPipeline = { name: "not a pipeline" }
