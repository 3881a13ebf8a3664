// The coordinator role's programmatic API (wiring only): the Coordinator itself, the role around it (dataset,
// checkpoints, final model) and the single-machine launcher's entry point.
export { Coordinator, type CoordinatorOptions, type CoordinatorEvent, type CoordinatorResult } from "./server.js";
export { runCoordinatorRole, type TrainReport } from "./role.js";
export { BIN } from "./launcher.js";
