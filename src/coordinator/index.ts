// The coordinator role's programmatic API (wiring only): the Coordinator itself, the role around it (dataset,
// checkpoints, final model) and the single-machine launcher's entry point.
export { Coordinator } from "./coordinator.js";
export type { CoordinatorOptions, CoordinatorEvent, CoordinatorResult } from "./types.js";
export { runCoordinatorRole, type TrainReport } from "./role.js";
export { BIN } from "./launcher.js";
