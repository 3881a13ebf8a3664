// Names of the compute backends, without loading any of them (the CLI's option lists use these).

export type BackendName = "wasm" | "webgpu" | "tensorflow" | "cpu";
export type BackendChoice = "auto" | BackendName;
export const BACKEND_CHOICES: BackendChoice[] = ["auto", "wasm", "webgpu", "tensorflow", "cpu"];
